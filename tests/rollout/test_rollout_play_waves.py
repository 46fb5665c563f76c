"""The real playbooks/rollout.yml under a real ansible-playbook (local connection, no lab) stops the
run after a wave as its verdict says (hazmon.rollout.verdict, tested in test_wave_verdict.py): the
first wave is a canary; every data-acquisition gateway of a wave failing stops it although they are
a quarter of its hosts; half the enterprises of a later wave failing does not.

The play's device roles are replaced by a stub role that fails where a test says (`rollout_roles`
is a play variable: extra vars override it); its verify gates are skipped (tag `verify`: they need
the lab; tests/e2e/test_rollout.py runs them per wave)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hazmon.rollout import ledger
from hazmon.rollout.runner import PLAYBOOKS, PROJECT_ROOT

KINDS = {"agw": "access_gateway", "daq": "daq_gateway", "aibox": "ai_box", "nvr": "nvr"}

STUB = """\
- name: Stub | a device role that fails where the test says
  ansible.builtin.fail:
    msg: "stub failure of {{ inventory_hostname }}"
  when: inventory_hostname in stub_fail
"""
ENTERPRISES = ("e1", "e2", "e3", "e4")
SERIAL = [4, 8, 4]  # the canary e1, then e2 and e3, then e4 (as preflight would cut them)


def _inventory() -> str:
    lines = []
    for e in ENTERPRISES:
        lines.append(f"[enterprise_{e}]")
        lines += [f"{e}-{short} hazmon_role={kind}" for short, kind in KINDS.items()]
        lines += [f"[enterprise_{e}:vars]", f"hazmon_enterprise={e.upper()}"]
    for short, kind in KINDS.items():
        lines += [f"[role_{kind}]", *(f"{e}-{short}" for e in ENTERPRISES)]
    lines += ["[batch_1:children]", *(f"enterprise_{e}" for e in ENTERPRISES)]
    lines += ["[all:vars]", "ansible_connection=local", f"ansible_python_interpreter={sys.executable}"]
    return "\n".join(lines) + "\n"


def _rollout(tmp_path: Path, fail: list[str]) -> tuple[int, list[ledger.Record], str]:
    (tmp_path / "roles" / "stub" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "stub" / "tasks" / "main.yml").write_text(STUB)
    (tmp_path / "hosts.ini").write_text(_inventory())
    extra = {"rollout_roles": {kind: ["stub"] for kind in KINDS.values()}, "stub_fail": fail,
             "rollout_serial": SERIAL, "rollout_max_fail_percentage": 50}
    path = tmp_path / "ledger.jsonl"
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"),
           "ANSIBLE_ROLES_PATH": str(tmp_path / "roles"), "ANSIBLE_CACHE_PLUGIN": "memory",
           "ANSIBLE_GATHERING": "explicit", ledger.ENV_LEDGER: str(path), ledger.ENV_RUN: "run-1"}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           "-e", json.dumps(extra), "--skip-tags", "verify", str(PLAYBOOKS / "rollout.yml")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, list(ledger.read(path)), proc.stdout + proc.stderr


def _reached(records: list[ledger.Record]) -> set[str]:
    return {r.enterprise for r in records if r.gate == "rollout" and r.enterprise}


def test_the_rollout_play_stops_after_a_failed_canary(tmp_path: Path):
    rc, records, out = _rollout(tmp_path, ["e1-nvr"])
    assert rc == 2, out[-3000:]
    assert _reached(records) == {"E1"}, out[-3000:]  # e2..e4: never started
    (stopped,) = [r for r in records if r.status == "stopped"]
    assert stopped.gate == "rollout" and "canary" in (stopped.reason or "") and "e1-nvr" in (stopped.reason or "")
    passed = {r.host for r in records if r.status == "passed" and r.gate == "rollout"}
    assert passed == {"e1-agw", "e1-daq", "e1-aibox"}  # the rest of the canary's hosts did pass
    assert out.count("PLAY [Rollout | enterprise devices, wave by wave]") == 1


def test_the_rollout_play_stops_when_every_data_acquisition_gateway_of_a_wave_failed(tmp_path: Path):
    # Two hosts of eight in the wave: under Ansible's host-counted 50 %, the run went on to e4.
    rc, records, out = _rollout(tmp_path, ["e2-daq", "e3-daq"])
    assert rc == 2, out[-3000:]
    assert _reached(records) == {"E1", "E2", "E3"}, out[-3000:]
    (stopped,) = [r for r in records if r.status == "stopped"]
    assert "every device of a kind failed: daq_gateway (2)" in (stopped.reason or "")
    assert out.count("PLAY [Rollout | enterprise devices, wave by wave]") == 2


def test_the_rollout_play_goes_on_when_half_a_later_wave_failed(tmp_path: Path):
    rc, records, out = _rollout(tmp_path, ["e2-agw"])
    assert rc == 2, out[-3000:]  # a host failed: the run says so
    assert _reached(records) == {"E1", "E2", "E3", "E4"}, out[-3000:]
    assert not [r for r in records if r.status == "stopped"]
    assert {r.host for r in records if r.status == "passed" and r.enterprise == "E4"} == {
        f"e4-{s}" for s in KINDS}
