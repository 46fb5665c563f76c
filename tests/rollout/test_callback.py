"""The ledger callback under a real ansible-playbook run (local connection, no lab needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hazmon.rollout import ledger
from hazmon.rollout.runner import PROJECT_ROOT

INVENTORY = """
[enterprise_e1]
e1-agw ansible_connection=local
e1-daq ansible_connection=local
[enterprise_e2]
e2-agw ansible_connection=local
[batch_3:children]
enterprise_e1
enterprise_e2
[enterprise_e1:vars]
hazmon_enterprise=CODE-E1
[enterprise_e2:vars]
hazmon_enterprise=CODE-E2
[all:vars]
ansible_python_interpreter={python}
"""

PLAYBOOK = """
- name: Gate one
  hosts: all
  gather_facts: false
  vars:
    hazmon_gate: preflight
  tasks:
    - name: A check that fails on one host
      ansible.builtin.fail:
        msg: "the DCS did not answer (D1)"
      when: inventory_hostname == 'e1-daq'
    - name: A secret task that fails
      ansible.builtin.command: /bin/false
      no_log: true
      changed_when: false
      when: inventory_hostname == 'e2-agw'
- name: Gate two
  hosts: all
  gather_facts: false
  vars:
    hazmon_gate: rollout
  tasks:
    - name: Something that changes
      ansible.builtin.debug:
        msg: hello
      changed_when: true
"""


def test_the_ledger_records_gates_failures_and_recaps(tmp_path: Path):
    (tmp_path / "hosts.ini").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    path = tmp_path / "ledger.jsonl"
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), ledger.ENV_LEDGER: str(path),
           ledger.ENV_RUN: "run-1", "ANSIBLE_CACHE_PLUGIN": "memory"}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           str(tmp_path / "play.yml")], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # hosts failed
    recs = list(ledger.read(path))
    assert {r.run for r in recs} == {"run-1"}
    failed = {r.host: r for r in recs if r.status == "failed"}
    assert set(failed) == {"e1-daq", "e2-agw"}
    assert failed["e1-daq"].gate == "preflight" and failed["e1-daq"].reason == "the DCS did not answer (D1)"
    assert failed["e1-daq"].enterprise == "CODE-E1" and failed["e1-daq"].batch == 3
    assert failed["e1-daq"].task == "A check that fails on one host"
    assert "hidden" in (failed["e2-agw"].reason or "")  # no_log output is never written
    passed = {(r.gate, r.host) for r in recs if r.status == "passed"}
    assert passed == {("preflight", "e1-agw"), ("rollout", "e1-agw")}
    recap = {r.host: r.counts for r in recs if r.status == "summary"}
    assert recap["e1-agw"]["changed"] == 1 and recap["e1-daq"]["failures"] == 1
    prog = ledger.progress(recs)
    assert prog["CODE-E1"].failed_gate == "preflight" and prog["CODE-E1"].failed_host == "e1-daq"


WAVES = """
- name: Waves
  hosts: all
  gather_facts: false
  order: sorted
  serial: [1, 2]
  vars:
    hazmon_gate: rollout
  tasks:
    - name: The roles
      ansible.builtin.debug:
        msg: rolled out
    - name: The wave's gates
      ansible.builtin.import_tasks:
        file: gates.yml
      vars:
        hazmon_gate: verify
"""
GATES = """
- name: A gate that fails on one host
  ansible.builtin.fail:
    msg: "no data at the tracker"
  when: inventory_hostname == 'e1-daq'
"""


def test_gates_inside_a_play_are_recorded_per_wave_under_their_own_gate(tmp_path: Path):
    """The rollout play runs its verify gates at the end of each wave (hazmon_gate verify on their
    import): a host passes the gates it reached and did not fail, each wave's records are written
    before the next wave's."""
    (tmp_path / "hosts.ini").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "play.yml").write_text(WAVES)
    (tmp_path / "gates.yml").write_text(GATES)
    path = tmp_path / "ledger.jsonl"
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), ledger.ENV_LEDGER: str(path),
           ledger.ENV_RUN: "run-1", "ANSIBLE_CACHE_PLUGIN": "memory"}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           str(tmp_path / "play.yml")], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    recs = [r for r in ledger.read(path) if r.status != "summary"]
    got = [(r.host, r.gate, r.status) for r in recs]
    # Wave 1 (e1-agw), written as wave 2 starts; then wave 2's failure at once, its passes at its end.
    assert got[:3] == [("e1-agw", "rollout", "passed"), ("e1-agw", "verify", "passed"),
                       ("e1-daq", "verify", "failed")]
    assert sorted(got[3:]) == [("e1-daq", "rollout", "passed"), ("e2-agw", "rollout", "passed"),
                               ("e2-agw", "verify", "passed")]
    assert recs[2].reason == "no data at the tracker" and recs[2].task == "A gate that fails on one host"
    prog = ledger.progress(ledger.read(path))
    assert prog["CODE-E1"].stage == "provisioned" and prog["CODE-E1"].failed_gate == "verify"
    assert prog["CODE-E2"].done
