#!/usr/bin/python
"""Ansible module: a Mosquitto password file that is rewritten only when an account changed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hazmon_broker_passwd
short_description: Keep a Mosquitto password file in step with a set of accounts, idempotently
description:
  - Writes a Mosquitto 2 password file (C(user:$7$iterations$salt$hash), PBKDF2-SHA512, the format
    C(mosquitto_passwd) writes) holding exactly the accounts in O(accounts).
  - C(mosquitto_passwd) salts every hash at random, so hashing again always changes the file. This
    module verifies each existing hash against the wanted password instead, keeps every entry that
    still matches and hashes only new or changed accounts; a second run with the same accounts
    reports no change and leaves the file untouched (Mosquitto is reloaded only when needed).
  - Also verifies old C($6$) (salted SHA-512) entries; entries it writes are always C($7$).
  - Passwords never appear in the result, the diff or on any command line; the diff shows user
    names only.
  - Runs on the broker host with the Python standard library only.
version_added: "0.1.0"
author: hazmon
options:
  path:
    description: The password file (Mosquitto's C(password_file)).
    type: path
    required: true
  accounts:
    description: User name to clear-text password. User names may not contain C(:) or a line break.
    type: dict
    required: true
  iterations:
    description: PBKDF2 iterations for new hashes (C(mosquitto_passwd)'s default is 101).
    type: int
    default: 101
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Write the broker's password file
  hazmon_broker_passwd:
    path: /etc/mosquitto/hazmon.passwd
    accounts:
      91510100MALABE0001: "{{ vault_mqtt_labe0001 }}"
      hazmon-tracker: "{{ vault_mqtt_tracker }}"
    owner: root
    group: mosquitto
    mode: "0640"
  no_log: true
"""

RETURN = r"""
users:
  description: How many accounts the file holds.
  returned: always
  type: int
added:
  description: Users that had no entry.
  returned: always
  type: list
  elements: str
removed:
  description: Users whose entries were dropped.
  returned: always
  type: list
  elements: str
updated:
  description: Users whose password changed (their old hash no longer matched).
  returned: always
  type: list
  elements: str
"""

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

SALT_BYTES = 12  # what mosquitto_passwd uses


def hash_password(password: str, iterations: int, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify(password: str, stored: str) -> bool:
    """Whether `stored` (a password file hash) is the hash of `password`; False if unreadable."""
    parts = stored.split("$")
    try:
        if len(parts) == 5 and parts[0] == "" and parts[1] == "7":
            iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            mine = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(digest))
        elif len(parts) == 4 and parts[0] == "" and parts[1] == "6":
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            mine = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except ValueError:  # bad base64 or iteration count: a hand-edited line
        return False
    return hmac.compare_digest(mine, digest)


def parse(text: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in text.splitlines():
        user, sep, stored = line.partition(":")
        if sep and user and not line.startswith("#"):
            entries[user] = stored.strip()
    return entries


def plan(current: dict[str, str], accounts: dict[str, str], iterations: int) -> tuple[dict[str, str], dict]:
    """The entries to write (matching hashes kept) and what changed, by user name."""
    wanted: dict[str, str] = {}
    added, updated = [], []
    for user in sorted(accounts):
        old = current.get(user)
        if old is not None and verify(accounts[user], old):
            wanted[user] = old
        else:
            wanted[user] = hash_password(accounts[user], iterations)
            (updated if old is not None else added).append(user)
    removed = sorted(set(current) - set(accounts))
    return wanted, {"added": added, "removed": removed, "updated": updated}


def render(entries: dict[str, str]) -> str:
    return "".join(f"{user}:{stored}\n" for user, stored in entries.items())


def names_only(entries: dict[str, str], marked: set[str]) -> str:
    """A diff-safe view: user names, never hashes (a hash is a secret's derivative)."""
    return "".join(f"{user}:<hash{' changed' if user in marked else ''}>\n" for user in entries)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "accounts": {"type": "dict", "required": True, "no_log": True},
            "iterations": {"type": "int", "default": 101},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    accounts = {str(k): str(v) for k, v in module.params["accounts"].items()}
    for user, password in accounts.items():
        if not user or ":" in user or any(c in user for c in "\r\n"):
            module.fail_json(msg=f"accounts: user name {user!r} cannot be written to a password file")
        if any(c in password for c in "\r\n"):
            module.fail_json(msg=f"accounts: the password of {user} contains a line break")
    if module.params["iterations"] < 1:
        module.fail_json(msg="iterations: must be at least 1")

    before_text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as fh:
            before_text = fh.read()
    current = parse(before_text)
    wanted, delta = plan(current, accounts, module.params["iterations"])
    after_text = render(wanted)
    changed = after_text != before_text
    diff = {
        "before_header": path,
        "after_header": path,
        "before": names_only(current, set(delta["updated"])),
        "after": names_only(wanted, set(delta["updated"]) | set(delta["added"])),
    }
    file_args = module.load_file_common_arguments(module.params)
    if changed and not module.check_mode:
        fd, tmp = tempfile.mkstemp(prefix=".hazmon-passwd.", dir=os.path.dirname(path) or ".")
        try:
            os.fchmod(fd, 0o600)  # never readable by others, not even for a moment
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(after_text)
            # Owner, group and mode on the new file before it takes the old one's place.
            module.set_fs_attributes_if_different({**file_args, "path": tmp}, False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, users=len(wanted), diff=diff, **delta)


if __name__ == "__main__":
    main()
