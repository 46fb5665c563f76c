"""The province broker's accounts (hazmon.broker, module hazmon_broker_accounts) and its password file
(module hazmon_broker_passwd): derived from the model, idempotent, accepted by a real Mosquitto,
and never showing a password."""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from hazmon import wire
from hazmon.broker import READ, WRITE, Right, broker_accounts
from hazmon.inventory.model import Annotation
from hazmon.inventory.secrets import credential_refs
from hazmon.inventory.validate import load_valid
from hazmon.testing.procs import free_port, stop, wait_port

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab"
BIN = Path(sys.executable).parent


def _passwd_module():
    path = REPO / "plugins" / "modules" / "hazmon_broker_passwd.py"
    spec = importlib.util.spec_from_file_location("hazmon_broker_passwd", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PW = _passwd_module()


def test_accounts_are_the_gateways_of_enterprises_not_in_long_term_shutdown_plus_the_tracker():
    inv, _ = load_valid(LAB)
    accounts = broker_accounts(inv)
    gateways = [a for a in accounts if a.enterprise]
    expected = sorted(
        e.code for e in inv.enterprises
        if e.devices.daq_gateway is not None and Annotation.LONG_TERM_SHUTDOWN not in e.annotations
    )
    assert [a.user for a in gateways] == expected
    assert "91510100MALABE0001" in expected and "91510100MALABE0006" in expected  # not ready, still an account
    shutdown = [e for e in inv.enterprises if Annotation.LONG_TERM_SHUTDOWN in e.annotations]
    assert shutdown and not {e.code for e in shutdown} & {a.user for a in accounts}  # R4
    fireworks = [e for e in inv.enterprises if e.devices.daq_gateway is None]
    assert fireworks and not {e.code for e in fireworks} & {a.user for a in accounts}  # no gateway, no account
    for a in gateways:
        ent = inv.enterprise(a.user)
        # Publish its own data; read only what the province committed of its own batches (custody).
        assert a.rights == (Right(WRITE, wire.enterprise_topic_filter(ent.city, ent.code)),
                            Right(READ, wire.ack_topic(ent.city, ent.code)))
        assert a.credential == f"vault_mqtt_{ent.slug}"
    tracker = accounts[-1]
    assert (tracker.user, tracker.rights) == (
        "hazmon-tracker", (Right(READ, "hazmon/v1/#"), Right(WRITE, "hazmon/ack/v1/#")))
    # Every password the broker needs is one the lab's vault is made with.
    assert {a.credential for a in accounts} <= set(credential_refs(inv))


def _accounts_through_ansible(inventory: Path) -> subprocess.CompletedProcess[str]:
    """The action plugin as a play runs it (inside the ansible process, on the control node)."""
    return subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "hazmon_broker_accounts", "-a", f"inventory={inventory}", "-o"],
        cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_control_node_action_returns_the_accounts_through_ansible(tmp_path):
    done = _accounts_through_ansible(LAB)
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads(done.stdout.split(" => ", 1)[1])
    inv, _ = load_valid(LAB)
    assert payload["changed"] is False
    assert payload["accounts"] == [a.as_dict() for a in broker_accounts(inv)]


def test_an_invalid_inventory_is_refused_with_its_file(tmp_path):
    shutil.copytree(LAB, tmp_path / "inv", ignore=shutil.ignore_patterns(".vault-pass"))
    province = tmp_path / "inv" / "province.yml"
    province.write_text(province.read_text().replace("platform:", "platfrom:", 1))
    done = _accounts_through_ansible(tmp_path / "inv")
    assert done.returncode != 0
    assert "is invalid" in done.stdout and "province.yml" in done.stdout, done.stdout[-2000:]


def test_verify_reads_mosquitto_passwd_hashes(tmp_path):
    f = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(f), "alice", "s3cret:with colon"], check=True)
    stored = f.read_text().strip().split(":", 1)[1]
    assert stored.startswith("$7$")
    assert PW.verify("s3cret:with colon", stored)
    assert not PW.verify("s3cret", stored)
    assert not PW.verify("x", "$7$101$not base64!$zz")  # a hand-edited line is simply a mismatch
    import base64
    import hashlib

    salt = b"0123456789ab"
    old = f"$6${base64.b64encode(salt).decode()}${base64.b64encode(hashlib.sha512(b'pw' + salt).digest()).decode()}"
    assert PW.verify("pw", old) and not PW.verify("pW", old)


def test_plan_keeps_matching_hashes_and_rehashes_only_what_changed():
    first, delta = PW.plan({}, {"a": "1", "b": "2"}, 101)
    assert delta == {"added": ["a", "b"], "removed": [], "updated": []}
    again, delta = PW.plan(first, {"a": "1", "b": "2"}, 101)
    assert again == first and delta == {"added": [], "removed": [], "updated": []}
    changed, delta = PW.plan(first, {"a": "1", "b": "22", "c": "3"}, 101)
    assert changed["a"] == first["a"] and changed["b"] != first["b"]
    assert delta == {"added": ["c"], "removed": [], "updated": ["b"]}
    dropped, delta = PW.plan(changed, {"c": "3"}, 101)
    assert list(dropped) == ["c"] and delta["removed"] == ["a", "b"]


def _play(tmp_path: Path, accounts: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The module through ansible-playbook, the way the role calls it (no_log), plus `args`."""
    secrets = tmp_path / "accounts.yml"
    secrets.write_text(yaml.safe_dump({"broker_accounts": accounts}), encoding="utf-8")
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "passwd", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Write", "no_log": True, "hazmon_broker_passwd": {
            "path": str(tmp_path / "passwd"), "accounts": "{{ broker_accounts }}", "mode": "0640"}}],
    }]), encoding="utf-8")
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{secrets}",
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", *args, str(play)],
        cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True, text=True, timeout=120, check=False,
    )


def _changed(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stdout + done.stderr
    return int(done.stdout.rsplit("changed=", 1)[1].split()[0])


def test_module_is_idempotent_and_never_shows_a_password(tmp_path):
    accounts = {"91510100MALABE0001": "gw-secret-0001", "hazmon-tracker": "tr-secret-9999"}
    passwd = tmp_path / "passwd"
    assert _changed(_play(tmp_path, accounts, "--check")) == 1
    assert not passwd.exists()  # check mode wrote nothing
    first = _play(tmp_path, accounts, "-vvv", "--diff")
    assert _changed(first) == 1
    for secret in accounts.values():
        assert secret not in first.stdout + first.stderr
    text = passwd.read_text()
    assert oct(passwd.stat().st_mode & 0o777) == "0o640"
    assert all(h not in first.stdout for h in (line.split(":", 1)[1] for line in text.splitlines()))
    assert _changed(_play(tmp_path, accounts)) == 0
    assert passwd.read_text() == text  # same salts: nothing rewritten
    assert _changed(_play(tmp_path, accounts, "--check", "--diff")) == 0
    accounts["hazmon-tracker"] = "tr-secret-new"
    assert _changed(_play(tmp_path, accounts)) == 1
    after = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    before = dict(line.split(":", 1) for line in text.splitlines())
    assert after["91510100MALABE0001"] == before["91510100MALABE0001"]  # untouched account kept its hash
    assert after["hazmon-tracker"] != before["hazmon-tracker"]
    passwd.chmod(0o644)  # a hand-made drift in the mode is put back
    assert _changed(_play(tmp_path, accounts)) == 1
    assert oct(passwd.stat().st_mode & 0o777) == "0o640"


@pytest.mark.integration
def test_real_mosquitto_accepts_the_hashes_it_did_not_make(tmp_path):
    passwd = tmp_path / "passwd"
    entries, _ = PW.plan({}, {"gw": "right-password", "other": "x"}, 101)
    passwd.write_text(PW.render(entries))
    passwd.chmod(0o600)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\nallow_anonymous false\npassword_file {passwd}\n"
                    f"listener {port} 127.0.0.1\npersistence false\nlog_dest file {tmp_path / 'log'}\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", port)

        def connack(password: str) -> str:
            got: list = []
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t{time.monotonic_ns()}")
            c.username_pw_set("gw", password)
            c.on_connect = lambda c, u, f, rc, p: got.append(str(rc))
            c.connect("127.0.0.1", port)
            c.loop_start()
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
            c.loop_stop()
            c.disconnect()
            return got[0] if got else "no answer"

        assert connack("right-password") == "Success"
        assert connack("wrong-password") == "Not authorized"
    finally:
        stop(broker)
