"""The lab plan (pure data) for the province side: the broker is a host of its own, not a service."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from hazmon.cli.lab import reset_targets
from hazmon.inventory.ansible import PROVINCE_BROKER_HOST
from hazmon.inventory.validate import load_valid
from hazmon.lab.lab import Lab, LabError
from hazmon.lab.plan import PROVINCE_ROUTER, PlanError, build_plan
from hazmon.lab.province import parse_recap
from hazmon.lab.services import registrar_http_args

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


@pytest.fixture
def inv():
    inventory, _ = load_valid(LAB)  # a fresh model per test: tests below edit it in memory
    return inventory


def test_broker_is_a_point_to_point_host_at_the_platform_mqtt_address(inv):
    plan = build_plan(inv)
    broker = plan.hosts[PROVINCE_BROKER_HOST]
    mqtt = inv.province.platform.mqtt.host
    assert broker.address == IPv4Address(str(mqtt)) == IPv4Address("198.18.0.10")
    assert broker.role == "province_broker" and broker.enterprise == ""
    assert broker.prefix == 32 and broker.point_to_point
    assert broker.gateway == PROVINCE_ROUTER
    assert broker.site_ns == plan.province_ns  # its veth's other end is in the province
    assert broker.ns in plan.namespaces and broker.ns.startswith("hzl-h-")
    # Every enterprise host stays on its site's LAN.
    assert not any(h.point_to_point for name, h in plan.hosts.items() if name != PROVINCE_BROKER_HOST)


def test_broker_address_is_not_a_province_loopback_service(inv):
    plan = build_plan(inv)
    p = inv.province.platform
    assert IPv4Address(str(p.mqtt.host)) not in plan.service_addresses
    for addr in (p.sip.host, p.prometheus.host, p.tracker.host, *p.ntp):
        assert IPv4Address(str(addr)) in plan.service_addresses


@pytest.mark.parametrize("field", ["ntp", "sip", "router"])
def test_a_service_on_the_broker_or_router_address_is_refused(inv, field):
    p = inv.province.platform
    if field == "ntp":
        p.ntp = [p.mqtt.host]
        expected = "platform.ntp[0]"
    elif field == "sip":
        p.sip.host = p.mqtt.host
        expected = "platform.sip.host"
    else:
        p.prometheus.host = IPv4Address(str(PROVINCE_ROUTER))
        expected = "platform.prometheus.host"
    with pytest.raises(PlanError) as err:
        build_plan(inv)
    assert expected in str(err.value)
    assert ("province router" if field == "router" else "province broker host") in str(err.value)


def test_hosts_of_an_enterprise_and_of_a_batch(inv):
    plan = build_plan(inv)
    assert sorted(h.name for h in plan.hosts_of("labe0001")) == ["labe0001-agw", "labe0001-aibox", "labe0001-daq"]
    assert [h.name for h in plan.hosts_of("91510100MALABE0001")] == [h.name for h in plan.hosts_of("labe0001")]
    batch1 = {h.name for h in plan.hosts_of_batch(1)}
    batch1_codes = {e.code for e in inv.enterprises if e.batch == 1 and e.code in plan.sites}
    assert batch1 == {h.name for h in plan.hosts.values() if h.enterprise in batch1_codes}
    assert "labe0001-daq" in batch1 and PROVINCE_BROKER_HOST not in batch1
    assert plan.hosts_of_batch(99) == []
    with pytest.raises(KeyError):
        plan.hosts_of("labe0007")  # long-term shutdown (R4): not in the lab


def test_reset_targets_combine_hosts_enterprises_and_batches(inv):
    lab = Lab(inventory_root=LAB, _inv=inv)
    got = reset_targets(lab, ["labe0001-daq", PROVINCE_BROKER_HOST], ["labe0001"], [])
    assert got == ["labe0001-daq", PROVINCE_BROKER_HOST, "labe0001-agw", "labe0001-aibox"]  # once each
    assert set(reset_targets(lab, [], [], [1])) == {h.name for h in lab.plan.hosts_of_batch(1)}
    for bad in ((["nohost"], [], []), ([], ["nosuch"], []), ([], [], [99]), ([], [], [])):
        with pytest.raises(LabError):
            reset_targets(lab, *bad)


def test_registrar_serves_its_status_where_the_inventory_says(inv):
    sip = inv.province.platform.sip
    assert sip.status_url == "http://198.18.0.11:8080/registrations.json"
    assert registrar_http_args(sip) == ["--http-port", "8080"]
    sip.status_url = None
    assert registrar_http_args(sip) == []
    sip.status_url = "http://198.18.0.99:8080/registrations.json"  # not the registrar's address
    with pytest.raises(PlanError, match="status_url"):
        registrar_http_args(sip)


def test_parse_recap_reads_every_host():
    text = (
        "TASK [x] ***\nok: [a]\n\nPLAY RECAP *****\n"
        "province-broker            : ok=16   changed=0    unreachable=0    failed=0    skipped=2    "
        "rescued=0    ignored=0   \n"
        "other : ok=1 changed=3 unreachable=0 failed=1 skipped=0 rescued=0 ignored=0\n"
    )
    recap = parse_recap(text)
    assert recap["province-broker"]["ok"] == 16 and recap["province-broker"]["changed"] == 0
    assert recap["other"]["changed"] == 3 and recap["other"]["failed"] == 1
    assert parse_recap("no recap here") == {}
