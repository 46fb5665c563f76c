"""Issue 3 acceptance 4: field devices answer real clients from the root namespace, routed into the lab.

Values are compared with what the simulator says it serves ({"cmd":"values"}) after freezing the
tags, so that the value cannot move between the two reads. Decoding here is written apart from the
simulator's encoder (struct, by the inventory's type, byte and word order, scale and offset).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import time

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

from hazmon.inventory.model import REGISTER_WIDTH, Tag
from hazmon.inventory.secrets import sip_credential
from hazmon.lab import faults, tls
from hazmon.lab.devices import tls_dir, tty_links

pytestmark = pytest.mark.e2e

FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f", "float64": ">d"}


def decode(tag: Tag, regs: list[int]) -> float:
    words = list(regs)
    if tag.word_order == "little":
        words.reverse()
    raw = b"".join(struct.pack(">H", w) if tag.byte_order == "big" else struct.pack("<H", w) for w in words)
    return struct.unpack(FORMATS[tag.type.value], raw)[0] * tag.scale + tag.offset


def frozen_values(lab, dcs_fault, enterprise: str, source) -> dict[str, float]:
    for tag in source.tags:
        dcs_fault("freeze", enterprise, tag.code)
    return faults.dcs_values(lab, enterprise, source.name)


def read_modbus(client, tags: list[Tag], device_id: int) -> dict[str, float]:
    out = {}
    for tag in tags:
        read = client.read_holding_registers if tag.function == "holding" else client.read_input_registers
        rr = read(tag.reg, count=REGISTER_WIDTH[tag.type], device_id=device_id)
        assert not rr.isError(), f"{tag.code}: {rr}"
        out[tag.code] = decode(tag, rr.registers)
    return out


def assert_close(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) <= set(want)
    for code, value in got.items():
        assert value == pytest.approx(want[code], rel=1e-5, abs=1e-3), code


@pytest.mark.parametrize("enterprise", ["labe0001", "labe0004", "labe0006"])
def test_modbus_tcp_tags_read_from_the_root_namespace(lab, dcs_fault, enterprise):
    site = lab.plan.site_for(enterprise)
    (source,) = [s for s in site.enterprise.data_sources if s.protocol.value == "modbus_tcp"]
    want = frozen_values(lab, dcs_fault, enterprise, source)
    client = ModbusTcpClient(str(source.host), port=source.port or 502, timeout=3)
    assert client.connect()
    try:
        got = read_modbus(client, source.tags, source.slave_id or 1)
    finally:
        client.close()
    assert len(got) == len(source.tags) >= 2
    assert_close(got, want)


def test_modbus_rtu_line_is_a_tty_in_the_gateway_and_serves_tags(lab, dcs_fault, ssh):
    site = lab.plan.site_for("labe0003")
    (source,) = site.enterprise.data_sources
    done = ssh("labe0003-daq", "test -c /dev/ttyS1 && stty -F /dev/ttyS1 9600 && stty -F /dev/ttyS1 speed")
    assert done.returncode == 0 and done.stdout.strip() == "9600", done.stderr
    want = frozen_values(lab, dcs_fault, "labe0003", source)
    _, gw_end = tty_links(lab.run_dir, site.enterprise.slug, source.name)
    # A pty carries no parity bit (the simulator serves it with parity N, see its log).
    client = ModbusSerialClient(
        os.path.realpath(gw_end), baudrate=9600, parity="N", bytesize=8, stopbits=1, timeout=2
    )
    assert client.connect()
    try:
        got = read_modbus(client, source.tags, source.slave_id or 1)
    finally:
        client.close()
    assert_close(got, want)


def test_opc_ua_tags_read_with_asyncua(lab, dcs_fault, vault):
    from asyncua import Client

    site = lab.plan.site_for("labe0002")
    (source,) = site.enterprise.data_sources
    want = frozen_values(lab, dcs_fault, "labe0002", source)

    async def read() -> dict[str, float]:
        client = Client(source.opc.endpoint, timeout=5)
        client.set_user(source.opc.username)
        client.set_password(vault[source.opc.credential])
        async with client:
            return {t.code: float(await client.get_node(t.node).read_value()) for t in source.tags}

    got = asyncio.run(read())
    assert len(got) == len(source.tags)
    assert_close(got, want)


def test_dcs_stop_makes_the_server_silent_until_resumed(lab, dcs_fault):
    source = lab.plan.site_for("labe0006").enterprise.data_sources[0]
    dcs_fault("stop", "labe0006")
    client = ModbusTcpClient(str(source.host), port=502, timeout=1, retries=0)
    try:
        silent = not client.connect() or client.read_holding_registers(0, count=2, device_id=1).isError()
    except Exception:
        silent = True
    finally:
        client.close()
    assert silent
    faults.dcs_command(lab, "labe0006", "resume")
    client = ModbusTcpClient(str(source.host), port=502, timeout=3)
    assert client.connect()
    try:
        assert not client.read_holding_registers(0, count=2, device_id=1).isError()
    finally:
        client.close()


@pytest.mark.parametrize("enterprise", ["labe0001", "labe0002"])  # huawei, hp_comware
def test_switch_driven_with_netmiko(lab, vault, enterprise):
    from netmiko import ConnectHandler

    sw = lab.plan.site_for(enterprise).enterprise.devices.switch
    free = next(p.name for p in sw.ports if p.connected is None)
    conn = ConnectHandler(
        device_type=sw.device_type,
        host=str(sw.address),
        username="admin",
        password=vault[sw.credential],
        timeout=20,
    )
    try:
        brief = conn.send_command("display interface brief")
        assert all(p.name.replace("GigabitEthernet", "GE") in brief or p.name in brief for p in sw.ports)
        # The access VLAN is `port default vlan` on VRP and `port access vlan` on Comware.
        vlan_cmd = f"port {'default' if sw.vendor == 'huawei' else 'access'} vlan {sw.vlan}"
        conn.send_config_set(
            [f"interface {free}", "description hazmon-e2e", "port link-type access", vlan_cmd]
        )
        conf = conn.send_command(f"display current-configuration interface {free}")
    finally:
        conn.disconnect()
    assert "description hazmon-e2e" in conf
    assert f"port {'default' if sw.vendor == 'huawei' else 'access'} vlan {sw.vlan}" in conf


def test_nvr_gb28181_access_set_over_isapi_registers_and_keeps_alive(lab, vault, tmp_path):
    site = lab.plan.site_for("labe0001")
    nvr = site.enterprise.devices.nvrs[0]
    sip = lab.inventory.province.platform.sip
    # The NVR's own SIP password (N8: per device where the platform keeps one), over verified HTTPS.
    password = vault[sip_credential(site.enterprise.slug, nvr.name, sip.per_device_passwords)]
    body = (
        "<SIPServerList><SIPServer><id>1</id><localPort>5060</localPort><GB28181>"
        f"<enabled>true</enabled><registrar>{sip.host}</registrar><registrarPort>{sip.port}</registrarPort>"
        f"<serverId>{sip.server_id}</serverId><serverDomain>{sip.domain}</serverDomain>"
        f"<authID>{nvr.device_id}</authID><password>{password}</password>"
        "<expires>3600</expires><heartbeatTime>1</heartbeatTime><heartbeatCount>3</heartbeatCount>"
        "</GB28181></SIPServer></SIPServerList>"
    )
    base = f"https://{nvr.address}"
    # curl as the ISAPI client (digest auth); the password goes through a 0600 netrc file, never argv.
    netrc = tmp_path / "netrc"
    netrc.touch(mode=0o600)
    netrc.write_text(f"machine {nvr.address} login admin password {vault[nvr.credential]}\n")

    def curl(*args: str) -> str:
        done = subprocess.run(
            ["curl", "-sS", "--fail", "--digest", "--netrc-file", str(netrc),
             "--cacert", str(tls_dir(lab.run_dir) / tls.CA_CERT), *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    curl(
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/xml",
        "--data-binary",
        body,
        f"{base}/ISAPI/System/Network/SIP",
    )
    assert f"<authID>{nvr.device_id}</authID>" in curl(f"{base}/ISAPI/System/Network/SIP")

    state_file = lab.run_dir / "province" / "registrar" / "registrations.json"
    deadline = time.monotonic() + 20
    device = {}
    while time.monotonic() < deadline:
        if state_file.exists():
            device = json.loads(state_file.read_text()).get("devices", {}).get(nvr.device_id, {})
            if device.get("registered") and device.get("keepalives", 0) >= 2:
                break
        time.sleep(0.5)
    assert device.get("registered"), device
    assert device.get("keepalives", 0) >= 2, device
    assert device["address"].startswith(str(nvr.address))
