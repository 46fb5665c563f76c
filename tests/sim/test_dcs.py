"""The DCS/GDS simulator: real servers on loopback read by independent clients.

Each protocol's simulator runs as its own process (`python -m hazmon.lab.sim.dcs`), as the lab
starts it. Tags are read with pymodbus and asyncua clients and decoded here, independently of the
simulator's codec (pymodbus's own register conversion, plus the byte swap of byte_order little),
then compared with what the simulator says it serves ({"cmd":"values"}).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncua import Client, ua
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from hazmon.inventory.model import DataSource, DataType, Enterprise, Tag
from hazmon.inventory.validate import load_valid
from hazmon.lab.sim import dcs
from hazmon.lab.sim.common import control, write_secret
from hazmon.lab.sim.dcs_modbus import LineSettings, usable_settings
from hazmon.lab.sim.dcs_signals import Process
from hazmon.testing.procs import free_port, stop, wait_port

pytestmark = pytest.mark.integration

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
TCP_ENT, RTU_ENT, OPC_ENT = "91510100MALABE0001", "91510500MALABE0003", "91510500MALABE0002"
TICK = "0.2"  # fast enough to see movement within a test, slow enough for consistent snapshots

PYMODBUS_TYPE = {
    DataType.INT16: ModbusTcpClient.DATATYPE.INT16,
    DataType.UINT16: ModbusTcpClient.DATATYPE.UINT16,
    DataType.INT32: ModbusTcpClient.DATATYPE.INT32,
    DataType.UINT32: ModbusTcpClient.DATATYPE.UINT32,
    DataType.FLOAT32: ModbusTcpClient.DATATYPE.FLOAT32,
    DataType.FLOAT64: ModbusTcpClient.DATATYPE.FLOAT64,
}
WIDTH = {DataType.INT16: 1, DataType.UINT16: 1, DataType.INT32: 2, DataType.UINT32: 2,
         DataType.FLOAT32: 2, DataType.FLOAT64: 4}


# ---------------------------------------------------------------- helpers


def source_of(code: str) -> tuple[Enterprise, DataSource]:
    inv, _ = load_valid(LAB)
    ent = inv.enterprise(code)
    assert ent is not None and ent.data_sources, f"the lab inventory lost enterprise {code}"
    return ent, ent.data_sources[0]


def decode(tag: Tag, registers: list[int]) -> float:
    """Independent decoder: pymodbus's conversion; byte_order little = bytes swapped in each register."""
    regs = list(registers)
    if tag.byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    raw = ModbusTcpClient.convert_from_registers(regs, PYMODBUS_TYPE[tag.type], word_order=tag.word_order)
    return float(raw) * tag.scale + tag.offset


@dataclass
class Sim:
    proc: subprocess.Popen
    control: Path
    log: Path

    def cmd(self, **request: object) -> dict:
        reply = control(self.control, dict(request))
        assert reply["ok"], f"control {request} failed: {reply}"
        return reply

    def values(self) -> dict[str, float]:
        return self.cmd(cmd="values")["values"]


def start_sim(tmp: Path, enterprise: str, source: str, *extra: str) -> Sim:
    sock, log = tmp / "dcs.sock", tmp / "dcs.log"
    argv = [sys.executable, "-m", "hazmon.lab.sim.dcs", "--inventory", str(LAB), "--enterprise", enterprise,
            "--source", source, "--control", str(sock), "--tick", TICK, "--seed", "7", *extra]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"simulator exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            if control(sock, {"cmd": "values"}, timeout=1)["ok"]:
                return Sim(proc, sock, log)
        time.sleep(0.1)
    stop(proc)
    pytest.fail(f"simulator did not answer on its control socket:\n{log.read_text()}")


def consistent(sim: Sim, read: Callable[[], dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """(served, read): a client read taken between two identical snapshots (no tick in between)."""
    for _ in range(10):
        before = sim.values()
        got = read()
        if sim.values() == before:
            return before, got
    pytest.fail("values changed during every read attempt")


def read_modbus(client: ModbusTcpClient | ModbusSerialClient, tags: list[Tag], unit: int) -> dict[str, float]:
    out = {}
    for tag in tags:
        assert tag.reg is not None
        fn = client.read_holding_registers if tag.function == "holding" else client.read_input_registers
        rr = fn(tag.reg, count=WIDTH[tag.type], device_id=unit)
        assert not rr.isError(), f"{tag.code}: {rr}"
        out[tag.code] = decode(tag, rr.registers)
    return out


def assert_same(served: dict[str, float], got: dict[str, float]) -> None:
    assert set(got) == set(served)
    for code, value in served.items():
        assert got[code] == pytest.approx(value, rel=1e-12, abs=1e-12), code


# ---------------------------------------------------------------- the process model (unit)


@pytest.mark.parametrize("code", [TCP_ENT, RTU_ENT, OPC_ENT, "91510100MALABE0004"])
def test_values_move_plausibly_for_an_hour(code: str) -> None:
    _, source = source_of(code)
    process = Process(source.tags, seed=1)
    first = process.values()
    seen: dict[str, set[float]] = {t.code: set() for t in source.tags}
    for _ in range(3600):
        before = process.values()
        process.step(1.0)
        for tag in source.tags:
            v = process.signals[tag.code].value
            seen[tag.code].add(v)
            assert tag.range_min <= v <= tag.range_max, tag.code
            for limit in (tag.alarm_high, tag.alarm_high_high):
                assert limit is None or v < limit, f"{tag.code} crossed alarm {limit} unasked: {v}"
            for limit in (tag.alarm_low, tag.alarm_low_low):
                assert limit is None or v > limit, f"{tag.code} crossed alarm {limit} unasked: {v}"
            if tag.kind == "level":  # a tank level drifts slowly: under 1 % of its range a second
                assert abs(v - before[tag.code]) < 0.01 * (tag.range_max - tag.range_min), tag.code
    moving = [t.code for t in source.tags if t.kind in ("level", "temperature", "pressure") and len(seen[t.code]) > 1]
    assert moving, f"no level, temperature or pressure moved in an hour: {first}"
    for tag in source.tags:
        if tag.kind in ("combustible_gas", "toxic_gas"):  # near zero
            assert max(seen[tag.code]) < tag.range_min + 0.2 * (tag.range_max - tag.range_min), tag.code


def test_the_lab_inventory_covers_every_type_and_order() -> None:
    # The Modbus TCP test below is only as good as the variety of the tag table it reads.
    _, source = source_of(TCP_ENT)
    assert {t.type for t in source.tags} == set(DataType)
    assert {(t.byte_order, t.word_order) for t in source.tags} >= {("big", "big"), ("big", "little"),
                                                                   ("little", "big")}
    assert {t.function for t in source.tags} == {"holding", "input"}


# ---------------------------------------------------------------- Modbus TCP


@pytest.fixture(scope="module")
def tcp_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sim, int]]:
    port = free_port()
    sim = start_sim(tmp_path_factory.mktemp("tcp"), TCP_ENT, "dcs", "--bind", "127.0.0.1", "--port", str(port))
    wait_port("127.0.0.1", port)
    yield sim, port
    stop(sim.proc)


@pytest.fixture
def tcp_client(tcp_sim: tuple[Sim, int]) -> Iterator[ModbusTcpClient]:
    client = ModbusTcpClient("127.0.0.1", port=tcp_sim[1], timeout=0.5, retries=0)
    assert client.connect()
    yield client
    client.close()


def test_modbus_tcp_serves_every_tag(tcp_sim: tuple[Sim, int], tcp_client: ModbusTcpClient) -> None:
    sim, _ = tcp_sim
    _, source = source_of(TCP_ENT)
    served, got = consistent(sim, lambda: read_modbus(tcp_client, source.tags, source.slave_id or 1))
    assert_same(served, got)
    # One read across the whole holding map: the tags are contiguous, so the collector may batch them.
    rr = tcp_client.read_holding_registers(0, count=14, device_id=1)
    assert not rr.isError() and len(rr.registers) == 14


def test_modbus_tcp_encodes_types_orders_and_scale(tcp_sim: tuple[Sim, int], tcp_client: ModbusTcpClient) -> None:
    sim, _ = tcp_sim
    f64 = struct.unpack(">4H", struct.pack(">d", 123.5))
    # Registers computed by hand from raw = (value - offset) / scale and the tag's orders.
    expected = {
        "LT-101": (12.5, "holding", 0, [0x4148, 0x0000]),  # float32 big/big
        "TT-101": (-12.3, "holding", 2, [0xFF85]),  # int16, scale 0.1: raw -123
        "PT-101": (1.234, "holding", 3, [1234]),  # uint16, scale 0.001
        "FT-101": (123.45, "holding", 4, [12345, 0]),  # uint32, word order little: low word first
        "TT-201": (123.5, "holding", 6, list(f64)),  # float64 big/big
        "PT-201": (4.5, "holding", 10, [0x0000, 0x9411]),  # int32 4500 = 0x1194, bytes swapped
        "GT-101": (12.5, "holding", 12, [0x0000, 0x4148]),  # float32, word order little
        "GT-201": (7, "input", 0, [7]),  # uint16 in the input registers
    }
    try:
        for code, (value, function, reg, regs) in expected.items():
            reply = sim.cmd(cmd="set", tag=code, value=value)
            assert reply["value"] == pytest.approx(value) and reply["mode"] == "forced"
            fn = tcp_client.read_holding_registers if function == "holding" else tcp_client.read_input_registers
            rr = fn(reg, count=len(regs), device_id=1)
            assert rr.registers == regs, code
        assert sim.values()["TT-101"] == pytest.approx(-12.3)
    finally:
        for code in expected:
            sim.cmd(cmd="unfreeze", tag=code)


def test_modbus_tcp_refuses_gaps_writes_and_other_units(tcp_sim: tuple[Sim, int], tcp_client: ModbusTcpClient) -> None:
    rr = tcp_client.read_holding_registers(14, count=1, device_id=1)  # past the last tag
    assert rr.isError() and rr.exception_code == 2  # illegal data address, as a DCS answers
    rr = tcp_client.read_input_registers(0, count=2, device_id=1)  # only GT-201 is an input register
    assert rr.isError() and rr.exception_code == 2
    rr = tcp_client.write_register(0, 1, device_id=1)
    assert rr.isError()
    with pytest.raises(ModbusException):  # another unit id: no answer at all
        tcp_client.read_holding_registers(0, count=2, device_id=9)


def test_modbus_tcp_faults(tcp_sim: tuple[Sim, int], tcp_client: ModbusTcpClient) -> None:
    sim, port = tcp_sim
    _, source = source_of(TCP_ENT)
    tags = {t.code: t for t in source.tags}
    lt = [tags["LT-101"]]
    try:
        # freeze: the value stops while the process goes on.
        frozen = sim.cmd(cmd="freeze", tag="LT-101")["value"]
        tt_before = sim.values()["TT-201"]
        reads = []
        for _ in range(5):
            time.sleep(0.25)
            reads.append(read_modbus(tcp_client, lt, 1)["LT-101"])
        assert reads == [pytest.approx(frozen)] * 5
        assert sim.values()["TT-201"] != tt_before  # float64 wander: others still move
        sim.cmd(cmd="unfreeze", tag="LT-101")
        moved = set()
        for _ in range(6):
            time.sleep(0.25)
            moved.add(read_modbus(tcp_client, lt, 1)["LT-101"])
        assert len(moved) > 1

        # out_of_range: above range_max by default, below range_min on request.
        high = sim.cmd(cmd="out_of_range", tag="TT-201")["value"]
        assert high > tags["TT-201"].range_max
        assert read_modbus(tcp_client, [tags["TT-201"]], 1)["TT-201"] == pytest.approx(high)
        low = sim.cmd(cmd="out_of_range", tag="TT-101", side="low")["value"]
        assert low < tags["TT-101"].range_min
        assert read_modbus(tcp_client, [tags["TT-101"]], 1)["TT-101"] == pytest.approx(low)
        time.sleep(0.5)  # held there across ticks
        assert sim.values()["TT-201"] == pytest.approx(high)

        # stop: requests go unanswered (on this connection and on a new one); resume restores them.
        assert sim.cmd(cmd="stop")["answering"] is False
        with pytest.raises(ModbusException):
            tcp_client.read_holding_registers(0, count=2, device_id=1)
        fresh = ModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        assert fresh.connect()
        with pytest.raises(ModbusException):
            fresh.read_holding_registers(0, count=2, device_id=1)
        fresh.close()
        sim.cmd(cmd="resume")
        tcp_client.close()
        assert tcp_client.connect()
        served, got = consistent(sim, lambda: read_modbus(tcp_client, source.tags, 1))
        assert_same(served, got)
    finally:
        sim.cmd(cmd="resume")
        for code in ("LT-101", "TT-201", "TT-101"):
            sim.cmd(cmd="unfreeze", tag=code)
    assert tags["TT-201"].range_min <= sim.values()["TT-201"] <= tags["TT-201"].range_max


def test_control_refuses_bad_requests(tcp_sim: tuple[Sim, int]) -> None:
    sim, _ = tcp_sim
    reply = control(sim.control, {"cmd": "freeze", "tag": "NOPE-1"})
    assert not reply["ok"] and "NOPE-1" in reply["error"] and "LT-101" in reply["error"]
    reply = control(sim.control, {"cmd": "set", "tag": "TT-101", "value": 1e9})
    assert not reply["ok"] and "int16" in reply["error"]  # raw 1e10 does not fit
    reply = control(sim.control, {"cmd": "set", "tag": "TT-101", "value": "hot"})
    assert not reply["ok"] and "number" in reply["error"]
    reply = control(sim.control, {"cmd": "explode"})
    assert not reply["ok"] and "unknown cmd" in reply["error"]
    assert control(sim.control, {"cmd": "values"})["ok"]  # still serving


# ---------------------------------------------------------------- Modbus RTU


@pytest.fixture(scope="module")
def rtu_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sim, Path]]:
    tmp = tmp_path_factory.mktemp("rtu")
    sim_end, gw_end = tmp / "dcs-pty", tmp / "ttyS1"
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={sim_end}", f"pty,raw,echo=0,link={gw_end}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (sim_end.exists() and gw_end.exists()):
            assert time.monotonic() < deadline, "socat made no pty pair"
            time.sleep(0.05)
        sim = start_sim(tmp, RTU_ENT, "gds", "--serial", str(sim_end))
        yield sim, gw_end
        stop(sim.proc)
    finally:
        stop(socat)


@pytest.fixture
def rtu_client(rtu_sim: tuple[Sim, Path]) -> Iterator[ModbusSerialClient]:
    # Parity N: a Linux pty refuses PARENB (EINVAL on re-open); the simulator serves the pty so too.
    _, source = source_of(RTU_ENT)
    assert source.serial is not None
    client = ModbusSerialClient(str(rtu_sim[1]), baudrate=source.serial.baud or 9600, parity="N",
                                bytesize=8, stopbits=1, timeout=0.5, retries=0)
    assert client.connect()
    yield client
    client.close()


def test_modbus_rtu_serves_every_tag(rtu_sim: tuple[Sim, Path], rtu_client: ModbusSerialClient) -> None:
    sim, _ = rtu_sim
    _, source = source_of(RTU_ENT)
    assert source.slave_id == 3
    served, got = consistent(sim, lambda: read_modbus(rtu_client, source.tags, 3))
    assert_same(served, got)


def test_pty_parity_falls_back_to_none_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A pty carries no parity bit: parity E is served as N there, with a warning; a real serial
    device keeps the inventory's parity."""
    wanted = LineSettings(9600, "E", 8, 1)
    master, slave = os.openpty()
    try:
        pty = os.ttyname(slave)
        with caplog.at_level("WARNING", logger="hazmon.lab.sim.dcs"):
            assert usable_settings(pty, wanted).parity == "N"
        assert "parity N" in caplog.text
        assert usable_settings(str(tmp_path / "ttyS1"), wanted).parity == "E"
        assert usable_settings(pty, LineSettings(9600, "N", 8, 1)).parity == "N"
    finally:
        os.close(master)
        os.close(slave)


def test_modbus_rtu_other_addresses_and_stop(rtu_sim: tuple[Sim, Path], rtu_client: ModbusSerialClient) -> None:
    sim, _ = rtu_sim
    _, source = source_of(RTU_ENT)
    with pytest.raises(ModbusException):  # a slave stays silent for another address on the line
        rtu_client.read_holding_registers(0, count=1, device_id=4)
    try:
        sim.cmd(cmd="stop")
        with pytest.raises(ModbusException):
            rtu_client.read_holding_registers(0, count=1, device_id=3)
    finally:
        sim.cmd(cmd="resume")
    set_to = sim.cmd(cmd="set", tag="OT-401", value=18.0)["value"]  # below alarm_low 19.5, as told
    try:
        assert read_modbus(rtu_client, [t for t in source.tags if t.code == "OT-401"], 3)["OT-401"] == set_to
        served, got = consistent(sim, lambda: read_modbus(rtu_client, source.tags, 3))
        assert_same(served, got)
    finally:
        sim.cmd(cmd="unfreeze", tag="OT-401")


# ---------------------------------------------------------------- OPC UA


@pytest.fixture(scope="module")
def opc_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sim, str, str]]:
    tmp = tmp_path_factory.mktemp("opc")
    password = os.urandom(9).hex()
    secret = write_secret(tmp / "opc.pass", password)
    port = free_port()
    sim = start_sim(tmp, OPC_ENT, "dcs", "--port", str(port), "--secret-file", str(secret))
    yield sim, f"opc.tcp://127.0.0.1:{port}/hazmon/", password
    stop(sim.proc)


async def opc_read(url: str, user: str | None, password: str | None, tags: list[Tag]) -> dict[str, tuple]:
    client = Client(url, timeout=2)
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    async with client:
        out = {}
        for tag in tags:
            dv = await client.get_node(tag.node or "").read_data_value()
            out[tag.code] = (dv.Value.Value, dv.Value.VariantType)
        return out


VARIANTS = {DataType.INT16: ua.VariantType.Int16, DataType.UINT16: ua.VariantType.UInt16,
            DataType.INT32: ua.VariantType.Int32, DataType.UINT32: ua.VariantType.UInt32,
            DataType.FLOAT32: ua.VariantType.Float, DataType.FLOAT64: ua.VariantType.Double}


def test_opc_ua_serves_every_node_to_the_configured_user(opc_sim: tuple[Sim, str, str]) -> None:
    sim, url, password = opc_sim
    _, source = source_of(OPC_ENT)
    assert source.opc is not None and source.opc.username

    def read() -> dict[str, float]:
        got = asyncio.run(opc_read(url, source.opc.username, password, source.tags))
        for tag in source.tags:
            assert got[tag.code][1] == VARIANTS[tag.type], tag.code
        return {t.code: float(got[t.code][0]) * t.scale + t.offset for t in source.tags}

    served, got = consistent(sim, read)
    assert_same(served, got)


def test_opc_ua_refuses_wrong_password_and_anonymous(opc_sim: tuple[Sim, str, str]) -> None:
    _, url, password = opc_sim
    _, source = source_of(OPC_ENT)
    assert source.opc is not None
    with pytest.raises(ua.UaError):
        asyncio.run(opc_read(url, source.opc.username, password + "x", source.tags[:1]))
    with pytest.raises(ua.UaError):
        asyncio.run(opc_read(url, None, None, source.tags[:1]))


def test_opc_ua_faults(opc_sim: tuple[Sim, str, str]) -> None:
    sim, url, password = opc_sim
    _, source = source_of(OPC_ENT)
    user = source.opc.username if source.opc else None
    gt = [t for t in source.tags if t.code == "GT-302"]
    try:
        high = sim.cmd(cmd="out_of_range", tag="GT-302")["value"]
        assert high > gt[0].range_max
        assert asyncio.run(opc_read(url, user, password, gt))["GT-302"][0] == high
        frozen = sim.cmd(cmd="freeze", tag="LT-301")["value"]
        time.sleep(0.5)
        lt = [t for t in source.tags if t.code == "LT-301"]
        assert asyncio.run(opc_read(url, user, password, lt))["LT-301"][0] == frozen
        sim.cmd(cmd="stop")
        with pytest.raises((OSError, TimeoutError, ua.UaError)):
            asyncio.run(opc_read(url, user, password, lt))
        sim.cmd(cmd="resume")
        served, got = consistent(sim, lambda: {
            k: float(v) for k, (v, _) in asyncio.run(opc_read(url, user, password, source.tags)).items()})
        assert_same(served, got)
        assert got["GT-302"] == high  # a held value survives stop and resume
    finally:
        sim.cmd(cmd="resume")
        sim.cmd(cmd="unfreeze", tag="GT-302")
        sim.cmd(cmd="unfreeze", tag="LT-301")


# ---------------------------------------------------------------- process behaviour


def test_sigterm_is_a_clean_exit(tmp_path: Path) -> None:
    port = free_port()
    sim = start_sim(tmp_path, TCP_ENT, "dcs", "--port", str(port))
    os.kill(sim.proc.pid, signal.SIGTERM)
    assert sim.proc.wait(10) == 0
    assert not sim.control.exists()  # the control socket is removed
    assert "stopped" in sim.log.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--enterprise", TCP_ENT, "--source", "nope"], "--source nope"),
        (["--enterprise", "91510100MALABE9999", "--source", "dcs"], "--enterprise 91510100MALABE9999"),
        (["--enterprise", OPC_ENT, "--source", "dcs"], "--secret-file is required"),
        (["--enterprise", RTU_ENT, "--source", "gds"], "--serial is required"),
        (["--enterprise", TCP_ENT, "--source", "dcs", "--tick", "0"], "--tick 0"),
    ],
)
def test_bad_options_are_named(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process (main() is what `python -m` runs): no server starts before the options are checked.
    assert dcs.main(["--inventory", str(LAB), "--port", str(free_port()), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "opc.pass"
    secret.write_text("not-so-secret\n")
    secret.chmod(0o644)
    argv = ["--inventory", str(LAB), "--enterprise", OPC_ENT, "--source", "dcs", "--port", str(free_port()),
            "--secret-file", str(secret)]
    assert dcs.main(argv) == 2
    err = capsys.readouterr().err
    assert "0644" in err and "0600" in err
    assert "not-so-secret" not in err
