"""Issue 3 acceptance 2: every lab host is a booted systemd host, reachable over SSH with the lab key."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e


def test_every_host_runs_systemd_with_its_name(lab, ssh):
    assert len(lab.plan.hosts) >= 10, "the lab inventory gives gateways and AI boxes to several enterprises"
    for name in lab.plan.hosts:
        deadline = time.monotonic() + 60
        while True:
            done = ssh(name, "hostname; systemctl is-system-running")
            state = done.stdout.split()[1:2]
            if state and state[0] in ("running", "degraded"):
                break
            assert time.monotonic() < deadline, f"{name}: systemd not up: {done.stdout!r} {done.stderr!r}"
            time.sleep(1)
        assert done.stdout.split()[0] == name


def test_ansible_sees_systemd_on_every_host(lab, tmp_path):
    ini = tmp_path / "lab.ini"
    ini.write_text(lab.ansible_inventory(), encoding="utf-8")
    done = subprocess.run(
        [
            str(lab_python_bin("ansible")),
            "all",
            "-i",
            str(ini),
            "-m",
            "setup",
            "-a",
            "filter=ansible_service_mgr",
            "-o",
            "-f",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={"ANSIBLE_HOST_KEY_CHECKING": "False", "PATH": _path()},
    )
    seen = {}
    for line in done.stdout.splitlines():
        host, _, rest = line.partition(" | ")
        status, _, payload = rest.partition(" => ")
        if status == "SUCCESS":
            seen[host] = json.loads(payload)["ansible_facts"]["ansible_service_mgr"]
    assert seen == {name: "systemd" for name in lab.plan.hosts}, done.stdout + done.stderr


def test_reset_makes_a_host_bare_again(lab, ssh):
    host = "labe0005-aibox"
    assert ssh(host, "touch /etc/hazmon-rolled-out").returncode == 0
    assert ssh(host, "test -e /etc/hazmon-rolled-out").returncode == 0
    lab.reset(host)
    done = ssh(host, "test -e /etc/hazmon-rolled-out; echo $?; hostname")
    assert done.stdout.split() == ["1", host]


def lab_python_bin(name: str):
    import sys
    from pathlib import Path

    return Path(sys.executable).parent / name


def _path() -> str:
    import os

    return os.environ.get("PATH", "/usr/bin:/bin")
