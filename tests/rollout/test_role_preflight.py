"""The roles' preflight refusals under a real ansible-playbook (local connection, nothing applied):
every cross-field rule that fails is reported, each naming its variables (and the notice's rule
where there is one), and a host whose settings hold passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hazmon.rollout import ledger
from hazmon.rollout.runner import PROJECT_ROOT

LAB = PROJECT_ROOT / "inventories" / "lab"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxhazmon ops@example"
NVR_OK = {"nvr_gb28181": True, "nvr_name": "nvr1", "nvr_enterprise": "91510100MALABE0001",
          "nvr_sip_device_id": "51010000001180000001", "nvr_sip_server_id": "51000000002000000001",
          "nvr_sip_domain": "5100000000", "nvr_sip_expires": 3600, "nvr_sip_heartbeat": 60,
          "nvr_sip_heartbeat_count": 3, "nvr_registration_wait": True,
          "nvr_registration_status_url": "http://198.18.0.13:8060/status",
          "nvr_credential": "vault_nvr_test", "nvr_sip_password_var": "vault_sip_test",
          "vault_nvr_test": "x", "vault_sip_test": "y"}
SWITCH_OK = {"switch_ports_device_type": "huawei", "switch_ports_vlan": 20, "switch_ports_credential": "vault_sw_test",
             "vault_sw_test": "z"}


def preflight(tmp_path: Path, role: str, host: str, variables: dict) -> subprocess.CompletedProcess[str]:
    inventory = f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    (tmp_path / "hosts.ini").write_text(inventory)
    play = [{"name": "Preflight only", "hosts": host, "gather_facts": False,
             "tasks": [{"name": "The role's preflight", "ansible.builtin.include_role":
                        {"name": role, "tasks_from": "preflight"}}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), "ANSIBLE_CACHE_PLUGIN": "memory",
           ledger.ENV_LEDGER: str(tmp_path / "ledger.jsonl")}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           "-e", f"@{tmp_path / 'vars.json'}", str(tmp_path / "play.yml")],
                          env=env, capture_output=True, text=True, check=False)


def gateway_vars(**over: object) -> dict:
    return {"hazmon_role": "daq_gateway", "hazmon_inventory_root": str(LAB),
            "gateway_base_ntp_servers": ["198.18.0.13"], "gateway_base_ops_users": [{"name": "ops1", "keys": [KEY]}],
            **over}


def test_gateway_base_passes_good_settings(tmp_path: Path) -> None:
    proc = preflight(tmp_path, "gateway_base", "labe0001-daq", gateway_vars())
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_gateway_base_reports_every_failing_rule_at_once(tmp_path: Path) -> None:
    users = [{"name": "root", "keys": [KEY]}, {"name": "nokeys"}, "just-a-string", {"name": "Bad Name", "keys": [KEY]},
             {"name": "strkeys", "keys": KEY}, {"name": "gone", "state": "absent"}, {"name": "odd", "state": "maybe"}]
    proc = preflight(tmp_path, "gateway_base", "labe0001-daq",
                     gateway_vars(gateway_base_ntp_servers=[], gateway_base_ops_users=users))
    out = proc.stdout
    assert proc.returncode == 2, out[-3000:]
    assert "gateway_base_ntp_servers must not be empty" in out
    for bad in ("[0] root", "[1] nokeys", "[2] just-a-string", "[3] Bad Name", "[4] strkeys", "[6] odd"):
        assert bad in out, (bad, out[-3000:])
    assert "gone" not in out.split("gateway_base_ops_users")[1].split("each entry")[0]
    assert "nobody could" not in out  # that rule holds: there are present users (bad ones, reported above)


def test_gateway_base_refuses_to_lock_root_out(tmp_path: Path) -> None:
    proc = preflight(tmp_path, "gateway_base", "labe0001-daq",
                     gateway_vars(gateway_base_sshd_permit_root_login="no",
                                  gateway_base_ops_users=[{"name": "gone", "state": "absent"}]))
    assert proc.returncode == 2
    assert 'gateway_base_sshd_permit_root_login is "no" but gateway_base_ops_users has no present user' in proc.stdout
    assert "ntp_servers" not in proc.stdout


def test_gateway_base_runs_only_on_gateways_of_the_inventory(tmp_path: Path) -> None:
    proc = preflight(tmp_path, "gateway_base", "labe0001-daq", gateway_vars(hazmon_role="nvr"))
    assert proc.returncode == 2 and "hazmon_role: nvr" in proc.stdout, proc.stdout[-3000:]


def test_nvr_passes_good_settings(tmp_path: Path) -> None:
    proc = preflight(tmp_path, "nvr", "labe0001-nvr-nvr1", NVR_OK)
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize(("over", "expected"), [
    ({"nvr_gb28181": False}, "V2: nvr_gb28181 (hazmon_nvr_gb28181) is false for NVR nvr1 of 91510100MALABE0001"),
    ({"nvr_sip_device_id": "51010000001310000001"}, "GB28181: nvr_sip_device_id 51010000001310000001"),
    ({"nvr_sip_domain": "5101000000"}, "nvr_sip_domain 5101000000 its"),
    ({"nvr_sip_expires": 30}, "nvr_sip_expires (30 s) must exceed nvr_sip_heartbeat (60 s)"),
    ({"nvr_registration_status_url": ""}, "nvr_registration_status_url (province.yml platform.sip.status_url)"),
    ({"nvr_credential": "vault_missing"}, "the vault variables vault_missing (nvr_credential)"),
])
def test_nvr_refusals_name_the_variable_and_rule(tmp_path: Path, over: dict, expected: str) -> None:
    proc = preflight(tmp_path, "nvr", "labe0001-nvr-nvr1", {**NVR_OK, **over})
    assert proc.returncode == 2 and expected in proc.stdout, proc.stdout[-3000:]
    # Only the one failing rule is reported.
    message = next(line for line in proc.stdout.splitlines() if line.startswith("[ERROR]: Task failed"))
    rules = ("V2:", "GB28181:", "must exceed nvr_sip_heartbeat", "the vault variables")
    assert sum(rule in message for rule in rules) == 1, message


def test_switch_reports_each_failing_rule(tmp_path: Path) -> None:
    assert preflight(tmp_path, "switch_ports", "labe0001-sw", SWITCH_OK).returncode == 0
    proc = preflight(tmp_path, "switch_ports", "labe0001-sw",
                     {**SWITCH_OK, "switch_ports_device_type": "cisco_ios", "switch_ports_vlan": 1})
    assert proc.returncode == 2
    assert "switch_ports_device_type (hazmon_switch_device_type) is cisco_ios" in proc.stdout
    assert "switch_ports_vlan (hazmon_switch_vlan) is 1" in proc.stdout
    assert "vault_sw_test" not in proc.stdout


def test_ai_box_refusals(tmp_path: Path) -> None:
    assert preflight(tmp_path, "ai_box", "labe0001-aibox", {}).returncode == 0
    proc = preflight(tmp_path, "ai_box", "labe0001-aibox",
                     {"ai_box_config_dir": "relative", "ai_box_analytics_overrides": {"cam1": "intrusion"}})
    assert proc.returncode == 2
    assert "ai_box_config_dir (relative) must be an absolute path" in proc.stdout
    assert "ai_box_analytics_overrides must map camera names" in proc.stdout
