"""The Ansible modules (plugins/modules/hazmon_*) through real ansible-playbook, against loopback simulators.

The modules' logic is tested in the other files; this checks the shells: argument specs, check mode,
diff, the result Ansible records, and that no password reaches the output of a -vvv run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hazmon.devices import analytics
from hazmon.devices.site import load_site
from hazmon.inventory.secrets import ensure_lab_vault
from hazmon.inventory.validate import load_valid
from hazmon.lab import tls
from hazmon.testing.procs import stop

from .conftest import LAB, VideoSims, start_switch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def play(tmp: Path, tasks: list[dict], secrets: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the tasks on localhost; each task's registered result is written to results.json."""
    (tmp / "secrets.yml").write_text(yaml.safe_dump(secrets), encoding="utf-8")
    registered = [{**task, "register": f"r{i}"} for i, task in enumerate(tasks)]
    dump = {"name": "results", "check_mode": False, "changed_when": False, "ansible.builtin.copy": {
        "dest": str(tmp / "results.json"), "mode": "0600",
        "content": "{{ [" + ", ".join(f"r{i}" for i in range(len(tasks))) + "] | to_json }}"}}
    (tmp / "play.yml").write_text(yaml.safe_dump([{
        "name": "modules", "hosts": "localhost", "gather_facts": False, "vars_files": [str(tmp / "secrets.yml")],
        "tasks": [*registered, dump]}]), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(PLAYBOOK), "-i", "localhost,", "-c", "local", "-e",
                           f"ansible_python_interpreter={sys.executable}", str(tmp / "play.yml"), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def results(proc: subprocess.CompletedProcess[str], tmp: Path) -> list[dict]:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((tmp / "results.json").read_text())


def test_nvr_module_configures_waits_and_keeps_secrets(tmp_path: Path, video_sims: VideoSims) -> None:
    task = {"name": "nvr", "hazmon_nvr_gb28181": {
        "inventory_root": str(LAB), "enterprise": "labe0001", "nvr": "nvr1",
        "address": video_sims.nvr_url.removeprefix("https://"), "ca_file": str(video_sims.ca_file),
        "password": "{{ nvr_password }}",
        "sip_password": "{{ sip_password }}", "registrar": "127.0.0.1", "registrar_port": video_sims.sip_port,
        "local_port": video_sims.local_port, "heartbeat_time": 1, "status_url": video_sims.status_url,
        "wait_timeout": 20}}
    secrets = {"nvr_password": video_sims.nvr_password, "sip_password": video_sims.sip_password}

    check = results(play(tmp_path, [task], secrets, "--check", "--diff"), tmp_path)[0]
    assert check["changed"] and "waited" not in check
    assert check["diff"]["before"]["gb28181"]["enabled"] is False
    assert video_sims.nvr_status()["sip"]["enabled"] is False

    first = results(play(tmp_path, [task], secrets, "--diff"), tmp_path)[0]
    assert first["changed"] and first["password_sent"] and first["registration"]["online"]
    assert first["gb28181"]["auth_id"] == "51010000001186000001"

    again = play(tmp_path, [task], secrets, "-vvv", "--diff")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout and "failed=0" in again.stdout
    for secret in secrets.values():
        assert secret not in again.stdout + again.stderr


def test_nvr_module_failure_names_v2_and_the_registrars_reason(tmp_path: Path, video_sims: VideoSims) -> None:
    task = {"name": "nvr", "hazmon_nvr_gb28181": {
        "inventory_root": str(LAB), "enterprise": "labe0001", "nvr": "nvr1",
        "address": video_sims.nvr_url.removeprefix("https://"), "ca_file": str(video_sims.ca_file),
        "password": "{{ nvr_password }}", "sip_password": "{{ wrong }}", "registrar": "127.0.0.1",
        "registrar_port": video_sims.sip_port, "local_port": video_sims.local_port,
        "status_url": video_sims.status_url, "wait_timeout": 4},
        "ignore_errors": True}
    proc = play(tmp_path, [task], {"nvr_password": video_sims.nvr_password, "wrong": "0123456789abcdef"})
    got = results(proc, tmp_path)[0]
    assert got["failed"] and got["changed"]  # the NVR was changed even though it did not register
    assert got["msg"].startswith("V2: NVR nvr1 of 91510100MALABE0001 (GB/T 28181 device 51010000001186000001)")
    assert "403 wrong password" in got["msg"]


def test_nvr_module_refuses_an_untrusted_certificate_and_a_password_over_plain_http(
        tmp_path: Path, video_sims: VideoSims) -> None:
    """N8: the module verifies the NVR's HTTPS certificate against ca_file, and never sends the SIP
    password over plain HTTP without the named opt-in; either refusal leaves the NVR as it was."""
    other_ca = tls.ensure_ca(tmp_path / "other-ca")
    base = {"inventory_root": str(LAB), "enterprise": "labe0001", "nvr": "nvr1", "password": "{{ nvr_password }}",
            "sip_password": "{{ sip_password }}", "registrar": "127.0.0.1", "registrar_port": video_sims.sip_port,
            "local_port": video_sims.local_port, "status_url": video_sims.status_url, "wait_timeout": 4}
    tasks = [
        {"name": "wrong CA", "ignore_errors": True, "hazmon_nvr_gb28181": {
            **base, "address": video_sims.nvr_url.removeprefix("https://"), "ca_file": str(other_ca.cert)}},
        {"name": "plain HTTP", "ignore_errors": True, "hazmon_nvr_gb28181": {
            **base, "address": video_sims.http_url.removeprefix("http://"), "scheme": "http"}},
    ]
    secrets = {"nvr_password": video_sims.nvr_password, "sip_password": video_sims.sip_password}
    proc = play(tmp_path, tasks, secrets, "-vvv")
    wrong_ca, plain = results(proc, tmp_path)
    assert wrong_ca["failed"] and not wrong_ca.get("changed")
    assert wrong_ca["msg"].startswith("NVR nvr1 of 91510100MALABE0001: GET https://127.0.0.1:")
    assert f"failed verification against the CA bundle {other_ca.cert}" in wrong_ca["msg"]
    assert plain["failed"] and not plain.get("changed")
    assert plain["msg"].startswith("N8: NVR nvr1 of 91510100MALABE0001: refusing to send the platform's SIP "
                                   f"password (<password> in PUT /ISAPI/System/Network/SIP) over plain HTTP "
                                   f"({video_sims.http_url})")
    assert "insecure_secrets_over_http" in plain["msg"]
    assert video_sims.nvr_status()["sip"]["enabled"] is False and video_sims.nvr_status()["channel_ids"] == {}
    for secret in secrets.values():
        assert secret not in proc.stdout + proc.stderr


def test_switch_module_reserves_reports_and_releases(tmp_path: Path) -> None:
    sim, proc = start_switch(tmp_path, "labe0002")
    try:
        args = {"inventory_root": str(LAB), "enterprise": "labe0002", "host": "127.0.0.1", "port": sim.port,
                "password": "{{ switch_password }}"}
        secrets = {"switch_password": sim.password}
        reserve = {"name": "reserve", "hazmon_switch_ports": args}
        release = {"name": "release", "hazmon_switch_ports": {**args, "state": "absent"}}

        first = results(play(tmp_path, [reserve], secrets, "--diff"), tmp_path)[0]
        assert first["changed"] and first["saved"]
        assert [(p["port"], p["role"], p["link"]) for p in first["ports"]] == [
            ("GigabitEthernet1/0/2", "ai_box", "up"), ("GigabitEthernet1/0/3", "nvr", "down")]
        assert " port access vlan 100" in first["diff"]["after"]
        assert any("GigabitEthernet1/0/3" in w for w in first["warnings"])  # link down: a warning, not a failure
        assert sim.state()["ports"]["GigabitEthernet1/0/3"]["description"] == "hazmon:nvr labe0002-nvr-nvr1"

        second = results(play(tmp_path, [reserve], secrets), tmp_path)[0]
        assert not second["changed"] and second["commands"] == []

        gone = results(play(tmp_path, [release], secrets, "--check"), tmp_path)[0]
        assert gone["changed"] and not gone["saved"] and gone["released"] == ["GigabitEthernet1/0/2",
                                                                              "GigabitEthernet1/0/3"]
        assert sim.state()["ports"]["GigabitEthernet1/0/2"]["description"].startswith("hazmon:")
        assert results(play(tmp_path, [release], secrets), tmp_path)[0]["saved"]
        assert sim.state()["ports"]["GigabitEthernet1/0/2"]["description"] == ""
    finally:
        stop(proc)


def test_ai_box_module_renders_the_same_text_as_the_cli(tmp_path: Path) -> None:
    task = {"name": "render", "hazmon_ai_box_analytics": {
        "inventory_root": str(LAB), "enterprise": "labe0005",
        "overrides": {"cam-ws": {"head_count_limit": {"max_persons": 3}}}}}
    got = results(play(tmp_path, [task], {}, "--check"), tmp_path)[0]
    _, ent = load_site(LAB, "labe0005")
    assert got["content"] == analytics.dumps(analytics.render(ent, {"cam-ws": {"head_count_limit":
                                                                               {"max_persons": 3}}}))
    assert not got["changed"] and got["cameras"] == 3
    bad = {"name": "render", "hazmon_ai_box_analytics": {
        "inventory_root": str(LAB), "enterprise": "labe0005", "overrides": {"cam-x": {}}}, "ignore_errors": True}
    assert "no camera ['cam-x']" in results(play(tmp_path, [bad], {}), tmp_path)[0]["msg"]


def test_the_nvr_roles_preflight_refuses_an_nvr_without_gb28181(tmp_path: Path) -> None:
    """V2, before any device is contacted: the lab inventory's NVR, declared without GB/T 28181."""
    ensure_lab_vault(load_valid(LAB)[0])  # the lab's generated vault (git-ignored): made here if absent
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "nvr", "hosts": "role_nvr", "gather_facts": False, "roles": [{"role": "nvr"}]}]), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(PLAYBOOK), "-i", str(LAB / "hazmon.yml"), "--vault-password-file",
                           str(LAB / ".vault-pass"), "--limit", "labe0001-nvr-nvr1", "-e", "hazmon_nvr_gb28181=false",
                           str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 2, f"rc {proc.returncode}: " + proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "V2: nvr_gb28181 (hazmon_nvr_gb28181) is false for NVR nvr1 of 91510100MALABE0001" in proc.stdout
    assert re.search(r"labe0001-nvr-nvr1\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", proc.stdout), proc.stdout
