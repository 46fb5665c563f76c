"""The hazmon_derive action plugin under a real ansible-playbook, with Mitogen's strategy (ansible.cfg)
and with Ansible's plain linear one (local connection, no lab needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hazmon.rollout import ledger
from hazmon.rollout.runner import PLAIN_STRATEGY, PROJECT_ROOT

LAB = PROJECT_ROOT / "inventories" / "lab"
INVENTORY = """
[boxes]
e1-daq ansible_connection=local
e2-agw ansible_connection=local
[all:vars]
ansible_python_interpreter={python}
"""
PLAYBOOK = """
- name: Derive once for the batch
  hosts: boxes
  gather_facts: false
  tasks:
    - name: Derive
      hazmon_derive:
        hosts: [labe0003-daq, labe0001-agw, nosuch-daq]
        inventory: {lab}
        metrics_port: 9999
      run_once: true
      register: derived
    - name: Every host of the batch sees the one result
      ansible.builtin.assert:
        that:
          - derived.hosts['labe0003-daq'].collector.serial_ports == ['/dev/ttyS1']
          - "'9999' in derived.hosts['labe0003-daq'].collector.config"
          - derived.hosts['labe0001-agw'].role == 'access_gateway'
          - derived.hosts['labe0001-agw'].management_networks | length > 0
          - "'no gateway or AI box' in derived.hosts['nosuch-daq'].error"
"""


@pytest.mark.parametrize("strategy", [None, PLAIN_STRATEGY], ids=["mitogen (ansible.cfg)", "plain linear"])
def test_derive_runs_once_for_the_batch(tmp_path: Path, strategy: str | None):
    (tmp_path / "hosts.ini").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(lab=LAB))
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), "ANSIBLE_CACHE_PLUGIN": "memory",
           ledger.ENV_LEDGER: str(tmp_path / "ledger.jsonl")}
    env.pop("ANSIBLE_STRATEGY", None)
    if strategy:
        env["ANSIBLE_STRATEGY"] = strategy
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           str(tmp_path / "play.yml")], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    checked = proc.stdout.split("TASK [Every host of the batch sees the one result]")[1]
    assert "ok: [e1-daq]" in checked and "ok: [e2-agw]" in checked
