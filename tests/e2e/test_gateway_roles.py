"""The gateway roles (gateway_base, node_exporter, collector) on one lab gateway, from bare.

labe0003-daq reads a Modbus RTU line (the lab's pty as /dev/ttyS1): the collector's unit must let
its dynamic user open that device and nothing else of /dev. The play is the roles alone, as
playbooks/rollout.yml imports them; the whole batch is tests/e2e/test_rollout.py's. A collector
the broker refuses (a wrong password) is started too, and restarted for ever: the role must fail
the host, saying why, within collector_start_timeout.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazmon.inventory.secrets import mqtt_credential
from hazmon.lab.lab import Lab

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>ok=.*)$", re.MULTILINE)
HOST = "labe0003-daq"
PLAY = """\
- name: Gateway roles
  hosts: all
  gather_facts: true
  gather_subset: [min]
  vars:
    gateway_base_packages_extra: [prometheus-node-exporter]
  roles:
    - gateway_base
    - node_exporter
    - collector
"""
REMOVE = """\
- name: Decommission the collector
  hosts: all
  gather_facts: false
  tasks:
    - name: Remove
      ansible.builtin.include_role:
        name: collector
        tasks_from: remove
"""


def _play(lab: Lab, playbook: Path, *extra: str) -> tuple[int, dict, str]:
    """Run a playbook on HOST; (rc, per-host stats, output)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    done = subprocess.run(
        ["ansible-playbook", "-i", str(lab.inventory_root / "hazmon.yml"),
         "--vault-password-file", str(lab.inventory_root / ".vault-pass"), "-l", HOST, str(playbook), *extra],
        capture_output=True, text=True, env=env, timeout=900)
    stats = {m["host"]: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m["counts"])}
             for m in RECAP.finditer(done.stdout)}
    return done.returncode, stats, done.stdout + done.stderr


def _first_message(topic: str, password: str, timeout: float = 30) -> bytes | None:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-gateway-roles-{os.getpid()}")
    client.username_pw_set("hazmon-tracker", password)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("198.18.0.10", 1883)
    client.subscribe(topic, qos=1)
    client.loop_start()
    deadline = time.monotonic() + timeout
    while not got and time.monotonic() < deadline:
        time.sleep(0.2)
    client.loop_stop()
    client.disconnect()
    return got[0] if got else None


def test_gateway_roles_from_bare(lab: Lab, ssh, vault: dict[str, str], tmp_path: Path) -> None:
    play, remove = tmp_path / "play.yml", tmp_path / "remove.yml"
    play.write_text(PLAY)
    remove.write_text(REMOVE)
    host = lab.plan.hosts[HOST]
    ent = lab.inventory.enterprise(host.enterprise)
    lab.reset(HOST)
    try:
        rc, stats, out = _play(lab, play)
        assert rc == 0, out[-3000:]
        assert stats[HOST]["changed"] > 0

        # Idempotence: nothing to do the second time.
        rc, stats, out = _play(lab, play)
        assert rc == 0 and stats[HOST]["changed"] == 0, out[-3000:]

        # A wrong broker password (what a stale vault would hand it): the unit starts, the collector
        # keeps running and retrying, `state: started` is satisfied; the role must fail the host.
        wrong = json.dumps({mqtt_credential(ent): "not-the-broker-password", "collector_start_timeout": 15})
        rc, stats, out = _play(lab, play, "-e", wrong)
        assert rc == 2 and stats[HOST]["failed"] == 1, out[-3000:]
        assert "hazmon-collector is not connected to the broker and queueing 15 s after its start" in out, out[-3000:]
        assert "the broker refused" in out and "refused the connection" in out  # the metrics, then the journal
        assert ssh(HOST, "systemctl is-active hazmon-collector").stdout.strip() == "active"  # started, useless
        # The vault's password again: the collector is restarted, connects, queues; the role passes.
        rc, stats, out = _play(lab, play)
        assert rc == 0 and stats[HOST]["changed"] > 0 and stats[HOST]["failed"] == 0, out[-3000:]

        # The collector runs, hardened, and publishes under its enterprise's topic.
        assert ssh(HOST, "systemctl is-active hazmon-collector").stdout.strip() == "active"
        score = ssh(HOST, "systemd-analyze security hazmon-collector --no-pager | tail -1").stdout
        assert float(score.split("level for hazmon-collector.service:")[1].split()[0]) <= 2.0, score
        message = _first_message(f"hazmon/v1/{ent.city}/{ent.code}/#", vault["vault_mqtt_tracker"])
        assert message is not None and json.loads(message)["gw"] == ent.code

        # Metrics from the management network (the control node is 198.18.64.1).
        body = urllib.request.urlopen(f"http://{host.address}:9920/metrics", timeout=5).read().decode()
        assert f'hazmon_collector_build_info{{gateway="{ent.code}"' in body
        assert "node_textfile_scrape_error" in urllib.request.urlopen(
            f"http://{host.address}:9100/metrics", timeout=5).read().decode()

        # Firewall: default-deny out; a flow the site does not need is refused at once.
        ruleset = ssh(HOST, "nft list ruleset").stdout
        assert "policy drop" in ruleset and "province broker (MQTT)" in ruleset
        probe = ssh(HOST, "python3 -c \"import socket; s=socket.socket(); s.settimeout(3); "
                          "print(s.connect_ex(('198.18.0.12', 9090)))\"")
        assert probe.stdout.strip() == str(113)  # EHOSTUNREACH: rejected by the output chain
        assert socket.create_connection((str(host.address), 22), timeout=5)  # management still in

        # Check mode with diff reports a hand edit and leaves it; the next run puts it back.
        ssh(HOST, "sed -i 's/^ClientAliveCountMax 2/ClientAliveCountMax 9/' /etc/ssh/sshd_config.d/10-hazmon.conf")
        rc, stats, out = _play(lab, play, "--check", "--diff")
        assert rc == 0 and stats[HOST]["changed"] >= 1, out[-3000:]
        assert "-ClientAliveCountMax 9" in out and "+ClientAliveCountMax 2" in out
        assert "ClientAliveCountMax 9" in ssh(HOST, "cat /etc/ssh/sshd_config.d/10-hazmon.conf").stdout

        # Decommission: gone but the queue, twice (idempotent).
        for expect_changed in (True, False):
            rc, stats, out = _play(lab, remove)
            assert rc == 0 and (stats[HOST]["changed"] > 0) == expect_changed, out[-3000:]
        left = ssh(HOST, "for p in /etc/systemd/system/hazmon-collector.service /opt/hazmon-collector "
                         "/etc/hazmon-collector /var/lib/private/hazmon-collector/queue.db; "
                         "do test -e $p && echo $p; done").stdout.split()
        assert left == ["/var/lib/private/hazmon-collector/queue.db"]
    finally:
        lab.reset(HOST)
