"""Host names, groups and the cache fingerprint, from hazmon.inventory.ansible (unit level)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hazmon.inventory.ansible import (
    PROVINCE_BROKER_HOST,
    ROLE_PROVINCE_BROKER,
    HostNameClash,
    build,
    fingerprint,
    host_name,
    to_static_inventory,
)
from hazmon.inventory.validate import load_valid

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


def test_host_names_are_derived_from_the_slug_and_made_safe():
    inv, _ = load_valid(LAB)
    ent = inv.enterprise("91510100MALABE0001")
    assert ent is not None
    assert host_name(ent, "access_gateway") == "labe0001-agw"
    assert host_name(ent, "daq_gateway") == "labe0001-daq"
    assert host_name(ent, "ai_box") == "labe0001-aibox"
    assert host_name(ent, "switch") == "labe0001-sw"
    nvr = ent.devices.nvrs[0].model_copy(update={"name": "NVR 2/West"})
    assert host_name(ent, "nvr", nvr) == "labe0001-nvr-nvr-2-west"


def test_two_enterprises_with_the_same_slug_are_refused_by_name():
    inv, readiness = load_valid(LAB)
    first = readiness[0]
    twin_ent = first.enterprise.model_copy(update={"code": "92" + first.enterprise.code[2:]})
    twin = type(first)(twin_ent, first.lifecycle, first.blocking)
    with pytest.raises(HostNameClash) as err:
        build(inv, [*readiness, twin])
    assert first.enterprise.code in str(err.value) and twin_ent.code in str(err.value)


def test_static_inventory_holds_every_host_once_with_its_vars():
    inv, readiness = load_valid(LAB)
    data = build(inv, readiness)
    static = to_static_inventory(data)
    seen: dict[str, object] = {}
    for group in static["all"]["children"].values():  # type: ignore[index]
        for host, hvars in (group.get("hosts") or {}).items():
            if hvars is not None:
                assert host not in seen
                seen[host] = hvars
    assert seen == data.hosts


def test_fingerprint_follows_path_mtime_and_size(tmp_path):
    inv = tmp_path / "lab"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns(".*"))
    before = fingerprint(inv)
    assert fingerprint(inv) == before
    efile = next((inv / "cities").rglob("*.yml"))
    st = efile.stat()
    os.utime(efile, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = fingerprint(inv)
    assert touched != before
    (inv / ".cache").mkdir()
    (inv / ".cache" / "x.yml").write_text("ignored: true\n")
    assert fingerprint(inv) == touched  # dot folders (caches, vault passwords) are not inventory data
    (efile.parent / "new.csv").write_text("code\n")
    assert fingerprint(inv) != touched


def test_the_province_broker_is_a_host_at_the_platform_mqtt_address():
    inv, readiness = load_valid(LAB)
    data = build(inv, readiness)
    broker = data.hosts[PROVINCE_BROKER_HOST]
    mqtt = str(inv.province.platform.mqtt.host)
    assert broker == {"hazmon_role": ROLE_PROVINCE_BROKER, "hazmon_address": mqtt, "ansible_host": mqtt}
    assert data.groups[f"role_{ROLE_PROVINCE_BROKER}"] == [PROVINCE_BROKER_HOST]
    # A province host: in no enterprise, city or batch group, so no rollout batch limit reaches it.
    assert [g for g, hosts in data.groups.items() if PROVINCE_BROKER_HOST in hosts] == [f"role_{ROLE_PROVINCE_BROKER}"]
    # Without a province.yml there is no platform, so no broker host.
    inv.province = None
    assert PROVINCE_BROKER_HOST not in build(inv, readiness).hosts
