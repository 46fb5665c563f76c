"""The hazmon inventory plugin through the real `ansible-inventory`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hazmon.inventory.ansible import ROLES, host_name
from hazmon.inventory.model import Enterprise
from hazmon.inventory.validate import load_valid

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab"
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def run_inventory(source: Path, *args: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(cache_dir),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(source), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def unwrap(value: object) -> object:
    """ansible-inventory marks plugin strings as untrusted ({"__ansible_unsafe": s}): read through it."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def graph_groups(text: str) -> dict[str, set[str]]:
    """Parse `--graph` output into group -> hosts listed directly under it."""
    groups: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        name = re.sub(r"^[\s|]*(--)?", "", line).strip()
        if name.startswith("@"):
            current = name[1:].rstrip(":")
            groups.setdefault(current, set())
        elif name and current is not None:
            groups[current].add(name)
    return groups


def devices(ent: Enterprise) -> list[str]:
    """Every managed device of an enterprise, straight from the model."""
    dev = ent.devices
    out = [host_name(ent, role) for role in ("access_gateway", "daq_gateway", "ai_box") if getattr(dev, role)]
    out += [host_name(ent, "nvr", nvr) for nvr in dev.nvrs]
    if dev.switch is not None:
        out.append(host_name(ent, "switch"))
    return out


@pytest.fixture(scope="module")
def lab_model():
    return load_valid(LAB)


def _copy_lab(dst: Path) -> Path:
    """The lab inventory without its vault-encrypted group_vars (the plugin does not need them;
    listing them would need the lab's vault password) and without dot files."""
    shutil.copytree(LAB, dst, ignore=shutil.ignore_patterns(".*", "group_vars"))
    return dst


@pytest.fixture(scope="module")
def lab_list(tmp_path_factory) -> dict:
    inv = _copy_lab(tmp_path_factory.mktemp("list") / "lab")
    proc = run_inventory(inv / "hazmon.yml", "--list", cache_dir=tmp_path_factory.mktemp("cache"))
    assert proc.returncode == 0, proc.stderr
    return unwrap(json.loads(proc.stdout))  # type: ignore[return-value]


def test_graph_has_every_device_in_city_batch_programme_role_and_state_groups(tmp_path, lab_model):
    proc = run_inventory(LAB / "hazmon.yml", "--graph", cache_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    groups = graph_groups(proc.stdout)
    _, readiness = lab_model
    assert {f"role_{r}" for r in ROLES} <= set(groups)
    for ready in readiness:
        ent = ready.enterprise
        hosts = devices(ent)
        assert hosts, f"{ent.code} has no managed device in the lab inventory"
        for group in (f"city_{ent.city}", f"batch_{ent.batch}", f"state_{ready.lifecycle}",
                      f"enterprise_{ent.slug}", *(f"programme_{p}" for p in ent.programmes)):
            assert set(hosts) <= groups[group], (group, hosts)
    # The reference lab enterprise: a major-hazard, key-process plant of Chengdu, batch 1, ready.
    assert {"labe0001-agw", "labe0001-daq", "labe0001-aibox", "labe0001-nvr-nvr1", "labe0001-sw"} <= (
        groups["city_5101"] & groups["batch_1"] & groups["programme_major_hazard"]
        & groups["programme_key_process"] & groups["state_ready"])
    assert "labe0001-agw" in groups["role_access_gateway"]
    assert "labe0001-daq" in groups["role_daq_gateway"]
    assert "labe0001-aibox" in groups["role_ai_box"]
    assert "labe0001-nvr-nvr1" in groups["role_nvr"]
    assert "labe0001-sw" in groups["role_switch"]
    # Fireworks producers get no data-acquisition gateway (N4).
    for ready in readiness:
        if ready.enterprise.fireworks_only:
            assert host_name(ready.enterprise, "daq_gateway") not in groups["role_daq_gateway"]


def test_list_hostvars_come_from_the_model(lab_list, lab_model):
    inv, readiness = lab_model
    hostvars = lab_list["_meta"]["hostvars"]
    agw = hostvars["labe0001-agw"]
    assert agw["ansible_host"] == "198.19.1.2"
    assert agw["hazmon_address"] == "198.19.1.2"
    assert agw["hazmon_role"] == "access_gateway"
    assert agw["hazmon_enterprise"] == "91510100MALABE0001"
    assert agw["hazmon_enterprise_name"] == "成都实验化工有限公司"
    assert agw["hazmon_city"] == "5101"
    assert agw["hazmon_city_name"] == "成都市"
    assert agw["hazmon_batch"] == 1
    assert agw["hazmon_lifecycle"] == "ready"
    assert agw["hazmon_ready"] is True
    assert agw["hazmon_blockers"] == []
    assert "ansible_connection" not in agw  # gateways: plain SSH to the management address
    # Province platform endpoints: variables of `all`, seen by every host.
    platform = inv.province.platform
    assert agw["hazmon_platform"]["mqtt"]["host"] == str(platform.mqtt.host)
    assert agw["hazmon_platform"]["sip"]["server_id"] == platform.sip.server_id

    broker = hostvars["province-broker"]  # the province's own host, reached over SSH like a gateway
    assert broker["ansible_host"] == str(platform.mqtt.host)
    assert broker["hazmon_role"] == "province_broker" and "ansible_connection" not in broker
    assert lab_list["role_province_broker"]["hosts"] == ["province-broker"]

    nvr = hostvars["labe0001-nvr-nvr1"]
    assert nvr["ansible_connection"] == "local"  # managed from the control node over ISAPI
    assert nvr["hazmon_nvr_device_id"] == "51010000001186000001"
    assert nvr["hazmon_nvr_credential"] == "vault_nvr_labe0001_nvr1"  # a vault name, never a secret
    assert nvr["hazmon_nvr_isapi_port"] == 443  # N8: ISAPI over HTTPS unless the inventory says the NVR has none
    sw = hostvars["labe0001-sw"]
    assert sw["ansible_connection"] == "local"  # managed from the control node through netmiko
    assert sw["hazmon_switch_device_type"] == "huawei"
    assert sw["hazmon_address"] == "198.19.1.5"

    # Blockers are rule IDs, exactly those readiness found; lean host variables: no tag tables.
    for ready in readiness:
        for host in devices(ready.enterprise):
            hv = hostvars[host]
            assert hv["hazmon_blockers"] == sorted({f.rule for f in ready.blocking})
            assert hv["hazmon_lifecycle"] == str(ready.lifecycle)
            assert not any("tag" in key for key in hv)
    assert any(r.blocking for r in readiness), "the lab should hold a blocked enterprise"


def test_invalid_inventory_makes_ansible_inventory_fail_with_the_rule(tmp_path):
    inv = _copy_lab(tmp_path / "lab")
    efile = inv / "cities" / "5101-chengdu" / "enterprises" / "labe0001-chem.yml"
    text = efile.read_text(encoding="utf-8")
    assert "contracted_mbps: 20," in text
    efile.write_text(text.replace("contracted_mbps: 20,", "contracted_mbps: 8,", 1), encoding="utf-8")
    proc = run_inventory(inv / "hazmon.yml", "--list", cache_dir=tmp_path / "cache")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "N2" in out and "labe0001-chem.yml" in out and "contracted_mbps" in out
    assert '"_meta"' not in proc.stdout  # no inventory was printed


def test_cache_is_used_while_files_are_unchanged_and_dropped_when_one_changes(tmp_path):
    inv = _copy_lab(tmp_path / "lab")
    cache = tmp_path / "cache"
    first = run_inventory(inv / "hazmon.yml", "--list", "-vvv", cache_dir=cache)
    assert first.returncode == 0, first.stderr
    assert "hazmon: validating" in first.stdout + first.stderr
    assert any(cache.iterdir()), "cache: true with jsonfile should have written an entry"

    second = run_inventory(inv / "hazmon.yml", "--list", "-vvv", cache_dir=cache)
    assert second.returncode == 0, second.stderr
    assert "cached inventory" in second.stdout + second.stderr
    listed = [line for line in second.stdout.splitlines() if not line.startswith(("Using ", "ansible-"))]
    assert "labe0001-agw" in "\n".join(listed)

    efile = inv / "cities" / "5101-chengdu" / "enterprises" / "labe0001-chem.yml"
    efile.write_text(efile.read_text(encoding="utf-8").replace("batch: 1\n", "batch: 3\n", 1), encoding="utf-8")
    third = run_inventory(inv / "hazmon.yml", "--graph", "batch_3", "-vvv", cache_dir=cache)
    assert third.returncode == 0, third.stderr
    assert "hazmon: validating" in third.stdout + third.stderr  # not served stale
    assert "labe0001-agw" in graph_groups(third.stdout)["batch_3"]


def test_export_keeps_platform_and_enterprise_facts_as_group_vars(tmp_path, lab_model):
    """`--list --export` (what AWX imports): platform endpoints on `all`, enterprise facts once per site."""
    inv = _copy_lab(tmp_path / "lab")
    proc = run_inventory(inv / "hazmon.yml", "--list", "--export", cache_dir=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    data = unwrap(json.loads(proc.stdout))
    platform = lab_model[0].province.platform
    assert data["all"]["vars"]["hazmon_platform"]["sip"]["host"] == str(platform.sip.host)
    assert data["enterprise_labe0001"]["vars"]["hazmon_enterprise"] == "91510100MALABE0001"
    assert "hazmon_enterprise" not in data["_meta"]["hostvars"]["labe0001-agw"]
