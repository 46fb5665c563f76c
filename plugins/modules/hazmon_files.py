#!/usr/bin/python
"""Ansible module: a role's whole set of config files in one module run (content rendered on the control node)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hazmon_files
short_description: Install a set of files and directories in one module run, with validation and diffs
description:
  - What a list of C(ansible.builtin.template) tasks does, in one module execution instead of two per
    file (the template action runs a C(stat) then a C(file) or C(copy) module). On a gateway each
    module execution costs about 0.3 s of CPU (Python compiles ansible's module_utils from the
    payload every time), so a role's ten config files cost 6 s per box and per run that way, and a
    batch of boxes shares the control node's cores with them in the lab.
  - A file's C(template) (a file under the role's C(templates/)) is rendered on the control node by
    the action plugin of the same name, as the template action renders it (so templates still start
    with C(ansible_managed)); the module on the host gets the result as C(content). The template
    lookup would do the same, but deep-copies all the host's variables for every file.
  - Each file is written only when its content differs (a temporary file beside it, validated, then
    renamed over it) or has its owner, group or mode fixed; C(changed_paths) lists what changed, so
    that handlers can act only on their own file (C(when:) on the handler).
  - Check mode reports what would change; diff mode shows each changed file's before and after
    (unless C(diff=false) for that file).
  - Runs on the managed host with the Python standard library only.
version_added: "0.5.0"
author: hazmon
options:
  directories:
    description: Directories made (or fixed) first, each C({path, owner, group, mode}).
    type: list
    elements: dict
    default: []
  files:
    description:
      - Files, each C({path, content or template, owner, group, mode, validate, diff, state}).
      - C(template) names a template of the role (rendered on the control node); C(content) is the
        text itself. One of them is required unless C(state=absent).
      - C(validate) is a command run on the temporary file (C(%s)) before it replaces the file, e.g.
        C(/usr/sbin/sshd -t -f %s); a failure leaves the file untouched and fails the task.
      - C(state=absent) removes the file.
    type: list
    elements: dict
    default: []
  absent:
    description: Paths of files removed if present (after the files above).
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Config files
  hazmon_files:
    directories:
      - {path: /etc/systemd/journald.conf.d, owner: root, group: root, mode: "0755"}
    files:
      - path: /etc/ssh/sshd_config.d/10-hazmon.conf
        template: etc/ssh/sshd_config.d/10-hazmon.conf.j2
        owner: root
        group: root
        mode: "0644"
        validate: /usr/sbin/sshd -t -f %s
    absent:
      - /etc/apt/sources.list.d/debian.sources
  register: __files
  notify: My role | files changed
"""

RETURN = r"""
changed_paths:
  description: The paths created, rewritten, removed or whose owner, group or mode was fixed.
  type: list
  elements: str
  returned: always
"""

import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shlex  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

DIR_SPEC = {
    "path": {"type": "path", "required": True},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "mode": {"type": "str", "default": "0755"},
}
FILE_SPEC = {
    "path": {"type": "path", "required": True},
    "content": {"type": "str"},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "mode": {"type": "str", "default": "0644"},
    "validate": {"type": "str"},
    "diff": {"type": "bool", "default": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


class FilesError(Exception):
    pass


def _ids(owner: str, group: str) -> tuple[int, int]:
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise FilesError(f"unknown owner or group {owner}:{group}: {exc}") from None


def _mode(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise FilesError(f"mode {text!r} is not an octal mode such as 0644") from None


def _attrs_differ(st: os.stat_result, uid: int, gid: int, mode: int) -> bool:
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (uid, gid, mode)


def _attrs(st: os.stat_result | None) -> str:
    if st is None:
        return ""
    return f"owner {st.st_uid}, group {st.st_gid}, mode {stat.S_IMODE(st.st_mode):04o}\n"


def ensure_directory(spec: dict, check: bool) -> bool:
    path = spec["path"]
    uid, gid = _ids(spec["owner"], spec["group"])
    mode = _mode(spec["mode"])
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise FilesError(f"{path} exists and is not a directory")
    if st is not None and not _attrs_differ(st, uid, gid, mode):
        return False
    if not check:
        if st is None:
            os.makedirs(path, mode)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def ensure_file(module: AnsibleModule, spec: dict, check: bool, diffs: list[dict]) -> bool:
    path = spec["path"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise FilesError(f"{path} exists and is not a regular file")
    old = None
    if st is not None:
        with open(path, "rb") as fh:
            old = fh.read()

    if spec["state"] == "absent":
        if st is None:
            return False
        if spec["diff"]:
            diffs.append({"before_header": path, "after_header": f"{path} (absent)",
                          "before": old.decode("utf-8", "replace"), "after": ""})
        if not check:
            os.unlink(path)
        return True

    if spec["content"] is None:
        raise FilesError(f"{path}: content (or a template) is required unless state is absent")
    new = spec["content"].encode("utf-8")
    uid, gid = _ids(spec["owner"], spec["group"])
    mode = _mode(spec["mode"])
    content_changed = old != new
    attrs_changed = st is not None and _attrs_differ(st, uid, gid, mode)
    if not (content_changed or attrs_changed):
        return False
    if spec["diff"]:
        if content_changed:
            diffs.append({"before_header": path if st is not None else f"{path} (absent)", "after_header": path,
                          "before": "" if old is None else old.decode("utf-8", "replace"),
                          "after": spec["content"]})
        else:
            diffs.append({"before_header": f"{path} (attributes)", "after_header": f"{path} (attributes)",
                          "before": _attrs(st), "after": f"owner {uid}, group {gid}, mode {mode:04o}\n"})
    if check:
        return True
    if not content_changed:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        return True
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise FilesError(f"{path}: directory {directory} does not exist (list it under directories)")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        if spec["validate"]:
            if "%s" not in spec["validate"]:
                raise FilesError(f"{path}: validate must contain %s (the file to check)")
            argv = [tmp if a == "%s" else a.replace("%s", tmp) for a in shlex.split(spec["validate"])]
            rc, out, err = module.run_command(argv)
            if rc != 0:
                raise FilesError(f"{path}: validation failed ({spec['validate']}), file left as it was: "
                                 f"{(err or out).strip()}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": DIR_SPEC},
            "files": {"type": "list", "elements": "dict", "default": [], "options": FILE_SPEC},
            "absent": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    check = module.check_mode
    changed: list[str] = []
    diffs: list[dict] = []
    try:
        for spec in module.params["directories"]:
            if ensure_directory(spec, check):
                changed.append(spec["path"])
        specs = module.params["files"] + [
            {**dict.fromkeys(FILE_SPEC), "path": p, "state": "absent", "diff": True} for p in module.params["absent"]]
        for spec in specs:
            if ensure_file(module, spec, check, diffs):
                changed.append(spec["path"])
    except (FilesError, OSError) as exc:
        module.fail_json(msg=str(exc), changed_paths=changed)
    result = {"changed": bool(changed), "changed_paths": changed}
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
