"""The nvr, switch_ports and ai_box roles through ansible-playbook against the RUNNING lab.

They run on the session lab of tests/e2e (brought up by its `lab` fixture). Hosts: labe0001 (Huawei switch, Hikvision
NVR, major hazards), labe0002 (H3C switch with a port marked for the AI box, Dahua NVR), labe0005
(fireworks). Each role's second run must change nothing, and check mode must see a hand edit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from hazmon.devices import analytics
from hazmon.devices.site import load_site
from hazmon.inventory.loader import Inventory
from hazmon.lab.devices import control_path
from hazmon.lab.hosts import ssh_argv
from hazmon.lab.lab import Lab
from hazmon.lab.sim.common import control

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
NVRS = ["labe0001-nvr-nvr1", "labe0002-nvr-nvr1"]
SWITCHES = ["labe0001-sw", "labe0002-sw"]
AIBOXES = ["labe0001-aibox", "labe0005-aibox"]
HOSTS = NVRS + SWITCHES + AIBOXES
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@pytest.fixture(scope="module")
def lab_dir(lab: Lab) -> Path:
    """The session lab's run dir (SSH key, control sockets)."""
    return lab.run_dir


@pytest.fixture(scope="module")
def lab_inventory(lab: Lab) -> Inventory:
    return lab.inventory


@pytest.fixture(scope="module")
def playbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("roles") / "play.yml"
    plays = [{"name": f"role {role}", "hosts": group, "gather_facts": False, "roles": [{"role": role}]}
             for role, group in (("nvr", "role_nvr"), ("switch_ports", "role_switch"), ("ai_box", "role_ai_box"))]
    path.write_text(yaml.safe_dump(plays), encoding="utf-8")
    return path


def run(playbook: Path, *args: str) -> tuple[dict[str, dict[str, int]], str, float]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    t0 = time.monotonic()
    proc = subprocess.run([str(PLAYBOOK), "-i", str(LAB / "hazmon.yml"), "--vault-password-file",
                           str(LAB / ".vault-pass"), "--limit", ",".join(HOSTS), str(playbook), *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    took = time.monotonic() - t0
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
             for m in RECAP.findall(proc.stdout)}
    assert proc.returncode == 0 and set(recap) == set(HOSTS), proc.stdout[-5000:] + proc.stderr[-2000:]
    return recap, proc.stdout, took


def ssh(lab_dir: Path, host: str, command: str) -> str:
    _, ent = load_site(LAB, host[:8])
    proc = subprocess.run(ssh_argv(lab_dir / "ssh" / "id_ed25519", str(ent.devices.ai_box.address), command),
                          capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout


def test_roles_converge_then_change_nothing(lab_dir: Path, playbook: Path, lab_inventory: Inventory) -> None:
    run(playbook)  # whatever state the lab is in: bring it to the model
    recap, out, took = run(playbook)
    changed = {h: r["changed"] for h, r in recap.items() if r["changed"]}
    assert changed == {}, out[-5000:]
    print(f"re-run of nvr + switch_ports + ai_box on {len(HOSTS)} hosts: {took:.1f} s")

    # The registrar lists both NVRs registered, online, with every channel of the inventory.
    inv = lab_inventory
    status = json.loads(urllib.request.urlopen(inv.province.platform.sip.status_url, timeout=5).read())
    for host in NVRS:
        ent = inv.enterprise(host[:8])
        nvr = ent.devices.nvrs[0]
        record = status["devices"][nvr.device_id]
        assert record["registered"] and record["online"], record
        assert {c.channel_id for c in ent.cameras} <= {c["device_id"] for c in record["channels"]}

    # The switches show the reserved ports, saved.
    for host, vlan_port, ai_port in (("labe0001-sw", "GigabitEthernet0/0/4", "GigabitEthernet0/0/3"),
                                     ("labe0002-sw", "GigabitEthernet1/0/3", "GigabitEthernet1/0/2")):
        state = control(control_path(lab_dir, "switch", host[:8], "msw1"), {"cmd": "state"})
        assert state["ports"][ai_port]["description"] == f"hazmon:ai_box {host[:8]}-aibox"
        assert state["ports"][vlan_port]["description"] == f"hazmon:nvr {host[:8]}-nvr-nvr1"
        assert state["ports"][ai_port]["vlan"] == state["ports"][vlan_port]["vlan"] == 100
        assert state["saved_at"] is not None

    # The AI boxes hold exactly what the model renders, 0644.
    for host in AIBOXES:
        _, ent = load_site(LAB, host[:8])
        content = ssh(lab_dir, host, "cat /etc/hazmon-aibox/analytics.json")
        assert analytics.check(content, ent) == []
        assert ssh(lab_dir, host, "stat -c %a /etc/hazmon-aibox/analytics.json").strip() == "644"


def test_check_mode_is_clean_then_sees_a_hand_edit(lab_dir: Path, playbook: Path) -> None:
    run(playbook)
    recap, out, _ = run(playbook, "--check", "--diff")
    assert all(r["changed"] == 0 for r in recap.values()), out[-5000:]
    ssh(lab_dir, "labe0001-aibox", "sed -i 's/\"absent_s\": 300/\"absent_s\": 30/' /etc/hazmon-aibox/analytics.json")
    try:
        recap, out, _ = run(playbook, "--check", "--diff")
        assert {h for h, r in recap.items() if r["changed"]} == {"labe0001-aibox"}
        assert '-            "absent_s": 30' in out and '+            "absent_s": 300' in out
    finally:
        recap, _, _ = run(playbook)
    assert recap["labe0001-aibox"]["changed"] >= 1
    _, ent = load_site(LAB, "labe0001")
    assert analytics.check(ssh(lab_dir, "labe0001-aibox", "cat /etc/hazmon-aibox/analytics.json"), ent) == []
