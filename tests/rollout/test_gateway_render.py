"""What the roles derive per host from the inventory model (hazmon.rollout.gateway): firewall flows,
management networks, and the collector's config, secret files and serial ports."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import ip_network
from pathlib import Path

import pytest
import yaml

from hazmon.collector.config import parse_config
from hazmon.inventory.validate import load_valid
from hazmon.rollout import gateway

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


@pytest.fixture(scope="module")
def inv():
    inventory, _ = load_valid(LAB)
    return inventory


def _flows(result: dict, kind: str) -> list[tuple[str, str, int]]:
    return [(f["proto"], f["address"], f["port"]) for f in result["output"] if f["kind"] == kind]


def test_modbus_tcp_gateway(inv) -> None:
    out = gateway.derive(inv, "labe0001-daq")
    platform = inv.province.platform
    assert out["role"] == "daq_gateway" and out["enterprise"] == "91510100MALABE0001"
    assert out["management_networks"] == ["198.18.0.0/16"]  # the platform's /16; not the sites' 198.19.x
    assert _flows(out, "uplink") == [("tcp", str(platform.mqtt.host), platform.mqtt.port)]
    assert _flows(out, "ntp") == [("udp", str(a), 123) for a in platform.ntp]
    if platform.mirror is not None:
        assert _flows(out, "mirror") == [("tcp", *platform.mirror.netloc)]
    assert _flows(out, "field") == [("tcp", "198.19.1.20", 502)]  # the DCS, Modbus TCP (D1c)

    col = out["collector"]
    assert col["secrets"] == [{"name": "mqtt.password", "var": "vault_mqtt_labe0001"}]
    assert col["serial_ports"] == [] and col["protocols"] == ["modbus_tcp"]
    cfg = parse_config(yaml.safe_load(col["config"]))  # what the role writes is a valid config
    assert (cfg.metrics.host, cfg.metrics.port) == ("198.19.1.3", 9920)  # scrapeable, not 127.0.0.1
    assert cfg.mqtt.username == "91510100MALABE0001"
    assert cfg.mqtt.password_file == gateway.DEFAULT_SECRETS_DIR / "mqtt.password"
    assert "password:" not in col["config"]


def test_opc_gateway_names_its_credential(inv) -> None:
    out = gateway.derive(inv, "labe0002-daq", metrics_port=9999, secrets_dir=Path("/s"))
    ent = inv.enterprise("labe0002")
    src = ent.data_sources[0]
    assert _flows(out, "field") == [("tcp", "198.19.2.21", 4840)]  # from opc.tcp://198.19.2.21:4840/hazmon/
    secrets = out["collector"]["secrets"]
    assert {"name": f"opc-{src.name}.password", "var": src.opc.credential} in secrets
    cfg = parse_config(yaml.safe_load(out["collector"]["config"]))
    assert cfg.sources[0].opc.password_file == Path(f"/s/opc-{src.name}.password")
    assert cfg.metrics.port == 9999
    assert out["collector"]["protocols"] == ["opc"]


def test_rtu_gateway_has_a_serial_port_and_no_field_flow(inv) -> None:
    out = gateway.derive(inv, "labe0003-daq")
    assert out["collector"]["serial_ports"] == ["/dev/ttyS1"]  # D1b: an RS-485 line, no network
    assert _flows(out, "field") == []


def test_ai_box_and_access_gateway(inv) -> None:
    aibox = gateway.derive(inv, "labe0001-aibox")
    nvr = inv.enterprise("labe0001").devices.nvrs[0]
    assert _flows(aibox, "field") == [("tcp", str(nvr.address), 554)]
    assert _flows(aibox, "uplink") and aibox["collector"] is None
    agw = gateway.derive(inv, "labe0001-agw")
    assert _flows(agw, "uplink") == [] and _flows(agw, "field") == [] and agw["collector"] is None


def test_management_prefix(inv) -> None:
    platform = inv.province.platform
    nets = gateway.management_networks(platform, 24)
    assert nets == ["198.18.0.0/24"]  # every lab platform address is in 198.18.0.x, merged into one
    exact = [ip_network(n) for n in gateway.management_networks(platform, 32)]
    addresses = set(gateway.platform_addresses(platform))
    assert all(any(a in n for n in exact) for a in addresses)
    assert sum(n.num_addresses for n in exact) == len(addresses)  # exactly those, adjacent ones merged
    with pytest.raises(gateway.GatewayError, match="8 to 32"):
        gateway.management_networks(platform, 4)


def test_unknown_host(inv) -> None:
    with pytest.raises(gateway.GatewayError, match="no gateway or AI box"):
        gateway.derive(inv, "labe0001-nvr-nvr1")  # an NVR is not a box the roles log in to


def test_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "hazmon.rollout.gateway", "labe0003-daq", "labe0001-agw",
                           "--inventory", str(LAB)], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    assert sorted(out) == ["labe0001-agw", "labe0003-daq"]
    assert out["labe0003-daq"]["collector"]["serial_ports"] == ["/dev/ttyS1"]
    assert out["labe0001-agw"]["role"] == "access_gateway" and out["labe0001-agw"]["collector"] is None


def test_command_line_fails_the_unknown_host_alone() -> None:
    # One host the model cannot derive must not fail its batch's other hosts (run_once in the roles).
    done = subprocess.run([sys.executable, "-m", "hazmon.rollout.gateway", "nosuch-daq", "labe0003-daq",
                           "--no-collector", "--inventory", str(LAB)], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    assert "nosuch-daq: no gateway or AI box" in out["nosuch-daq"]["error"]
    assert out["labe0003-daq"]["collector"] is None and out["labe0003-daq"]["output"]
    bad = subprocess.run([sys.executable, "-m", "hazmon.rollout.gateway", "labe0003-daq", "--inventory",
                          str(LAB / "nosuch")], capture_output=True, text=True)
    assert bad.returncode == 2 and "hazmon.rollout.gateway:" in bad.stderr


def test_the_clock_wait_is_the_collectors_unless_the_role_sets_it(inv) -> None:
    """The role's start check must allow for the collector's wait for a synchronised clock: derive
    reports it, and the role's collector_clock_sync_wait (the lab's 0) reaches the config."""
    default = gateway.derive(inv, "labe0001-daq")["collector"]
    assert default["clock_sync_wait"] == parse_config(yaml.safe_load(default["config"])).clock.sync_wait > 0
    lab = gateway.derive(inv, "labe0001-daq", clock_sync_wait=0)["collector"]
    assert lab["clock_sync_wait"] == 0
    assert parse_config(yaml.safe_load(lab["config"])).clock.sync_wait == 0
