"""Preflight's live-check modules against real peers on loopback.

hazmon_dcs_probe talks to the project's DCS simulator (Modbus TCP, Modbus RTU over a socat pty pair,
OPC UA), and to small fakes for the answers a healthy simulator never gives (bad CRC, UA ERR).
hazmon_link_probe downloads from the mirror server over a loopback shaped with tc tbf in a private
network namespace. The module files are imported as they are (they run on gateways that cannot
import hazmon), and run once each through `ansible` as a play would.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

from hazmon.lab.sim.common import control, write_secret
from hazmon.testing.adhoc import ansible_adhoc
from hazmon.testing.procs import free_port, stop, wait_port

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab"
MODULES = REPO / "plugins" / "modules"
TCP_ENT, RTU_ENT, OPC_ENT = "91510100MALABE0001", "91510500MALABE0003", "91510500MALABE0002"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, MODULES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


dcs = load("hazmon_dcs_probe")
link = load("hazmon_link_probe")


def params(**kw: object) -> dict:
    base = {"name": "dcs", "protocol": "modbus_tcp", "host": None, "port": 502, "slave_id": 1, "register": 0,
            "function": 3, "serial_port": None, "baud": 9600, "parity": "N", "data_bits": 8, "stop_bits": 1,
            "endpoint": None, "timeout": 1.0, "retries": 0, "probe_busy_line": False}
    return {**base, **kw}


def ansible_module(module: str, args: str, *extra: str) -> dict:
    """Run a module against localhost (as a play runs it on a gateway); its JSON result."""
    return ansible_adhoc("localhost", module, args, "-c", "local", "-e", "ansible_python_interpreter=/usr/bin/python3",
                         *extra, timeout=120)


# ---------------------------------------------------------------- pure functions


def test_crc16_is_modbus_crc() -> None:
    # The classic example frame: slave 1, read holding registers 0..1 -> CRC bytes C4 0B.
    assert dcs.rtu_frame(1, dcs.read_pdu(3, 0, 2)) == bytes.fromhex("010300000002c40b")
    assert dcs.crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value


def test_modbus_answers_are_read_or_refused() -> None:
    assert dcs.parse_pdu(3, bytes.fromhex("03021234")) == 0x1234
    with pytest.raises(dcs.ProbeError, match=r"exception code 2 \(illegal data address\)"):
        dcs.parse_pdu(3, bytes.fromhex("8302"))
    with pytest.raises(dcs.Retryable, match="function 4, not 3"):
        dcs.parse_pdu(3, bytes.fromhex("04021234"))
    frame = dcs.rtu_frame(3, bytes.fromhex("03020002"))
    assert dcs.check_rtu(3, 3, frame) == 2
    with pytest.raises(dcs.Retryable, match="bad CRC"):
        dcs.check_rtu(3, 3, frame[:-1] + bytes([frame[-1] ^ 0xFF]))
    with pytest.raises(dcs.Retryable, match="slave 3, not 4"):
        dcs.check_rtu(4, 3, frame)
    assert dcs.rtu_answer_length(bytes.fromhex("0383")) == 5
    assert dcs.rtu_answer_length(bytes.fromhex("030302")) == 7


def test_ua_hello_and_answers() -> None:
    hello = dcs.ua_hello("opc.tcp://h:4840/x")
    assert hello[:4] == b"HELF" and struct.unpack("<I", hello[4:8])[0] == len(hello)
    assert hello.endswith(struct.pack("<i", 18) + b"opc.tcp://h:4840/x")
    ack = b"ACKF" + struct.pack("<IIIIII", 28, 0, 8192, 8192, 0, 0)
    assert dcs.parse_ua_answer(ack)["receive_buffer_size"] == 8192
    err = b"ERRF" + struct.pack("<II", 0, 0x80830000) + struct.pack("<i", 3) + b"bad"
    with pytest.raises(dcs.ProbeError, match="ERR 0x80830000 bad"):
        dcs.parse_ua_answer(err)


def test_link_verdict_accepts_a_healthy_line_and_refuses_a_degraded_one() -> None:
    assert link.threshold(20, 0.1) == pytest.approx(18)
    assert link.mbps(8 * 2**20, 3.55) == pytest.approx(18.9, abs=0.05)
    ok, msg = link.verdict("labe0001 line", 18.9, 20, 0.1)
    assert ok and "18.9" in msg
    ok, msg = link.verdict("labe0006 line", 7.6, 20, 0.1)
    assert not ok and "labe0006 line: 7.6 Mbit/s measured, below 18.0" in msg and "N2" in msg
    with pytest.raises(ValueError, match="tolerance"):
        link.threshold(20, 1.5)


# ---------------------------------------------------------------- the DCS simulator


def start_sim(tmp: Path, enterprise: str, source: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    sock, log = tmp / "dcs.sock", tmp / "dcs.log"
    # A tick of an hour: values stand still, so the probe's reading can be compared with a client's.
    argv = [sys.executable, "-m", "hazmon.lab.sim.dcs", "--inventory", str(LAB), "--enterprise", enterprise,
            "--source", source, "--control", str(sock), "--tick", "3600", "--seed", "7", *extra]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"simulator exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            if control(sock, {"cmd": "values"}, timeout=1)["ok"]:
                return proc, sock
        time.sleep(0.1)
    stop(proc)
    pytest.fail(f"simulator did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def tcp_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    port = free_port()
    proc, sock = start_sim(tmp_path_factory.mktemp("tcp"), TCP_ENT, "dcs", "--bind", "127.0.0.1", "--port",
                           str(port))
    wait_port("127.0.0.1", port)
    yield port, sock
    stop(proc)


@pytest.mark.integration
def test_modbus_tcp_reads_what_the_slave_holds(tcp_sim: tuple[int, Path]) -> None:
    port, _ = tcp_sim
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    assert client.connect()
    try:
        holding = client.read_holding_registers(3, count=1, device_id=1).registers[0]
        inputs = client.read_input_registers(0, count=1, device_id=1).registers[0]
    finally:
        client.close()
    ok, out, msg = dcs.probe(params(host="127.0.0.1", port=port, register=3))
    assert ok, msg
    assert out["value"] == holding and 0 < out["latency_ms"] < 1000
    assert msg.startswith(f"source dcs: modbus_tcp 127.0.0.1:{port} slave 1 function 3 (holding register 3)")
    ok, out, msg = dcs.probe(params(host="127.0.0.1", port=port, register=0, function=4))
    assert ok and out["value"] == inputs, msg


@pytest.mark.integration
def test_modbus_tcp_failures_say_what_happened(tcp_sim: tuple[int, Path]) -> None:
    port, sock = tcp_sim
    ok, _, msg = dcs.probe(params(host="127.0.0.1", port=port, register=900))
    assert not ok
    assert msg == (f"source dcs: modbus_tcp 127.0.0.1:{port} slave 1 function 3 (holding register 900): "
                   "Modbus exception code 2 (illegal data address)")
    ok, _, msg = dcs.probe(params(host="127.0.0.1", port=free_port()))
    assert not ok and "cannot connect: Connection refused" in msg
    assert control(sock, {"cmd": "stop"})["ok"]
    try:
        ok, _, msg = dcs.probe(params(host="127.0.0.1", port=port, timeout=0.3, retries=1))
        assert not ok and "timeout" in msg and "(2 attempts)" in msg, msg
    finally:
        assert control(sock, {"cmd": "resume"})["ok"]


@pytest.fixture(scope="module")
def pty_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("rtu")
    sim_end, gw_end = tmp / "dcs-pty", tmp / "ttyS1"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={sim_end}", f"pty,raw,echo=0,link={gw_end}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not (sim_end.exists() and gw_end.exists()):
        assert time.monotonic() < deadline, "socat made no pty pair"
        time.sleep(0.05)
    yield sim_end, gw_end
    stop(socat)


@pytest.mark.integration
def test_modbus_rtu_over_a_serial_line(pty_pair: tuple[Path, Path], tmp_path: Path) -> None:
    sim_end, gw_end = pty_pair
    proc, _ = start_sim(tmp_path, RTU_ENT, "gds", "--serial", str(sim_end))
    try:
        client = ModbusSerialClient(str(gw_end), baudrate=9600, parity="N", bytesize=8, stopbits=1, timeout=1,
                                    retries=0)
        assert client.connect()
        try:
            expected = client.read_holding_registers(0, count=1, device_id=3).registers[0]
        finally:
            client.close()
        # socat, the test's wire, holds both pty ends (in the lab it is outside the host's PID namespace).
        rtu = params(name="gds", protocol="modbus_rtu", serial_port=str(gw_end), slave_id=3, probe_busy_line=True)
        ok, out, msg = dcs.probe(rtu)
        assert ok, msg
        assert out["value"] == expected
        assert msg.startswith(f"source gds: modbus_rtu {gw_end} 9600 8N1 slave 3 function 3")
        frame = bytes.fromhex(out["answer"])
        assert frame[:3] == bytes([3, 3, 2]) and dcs.crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]
        # Another slave address on the line: nobody answers (RS-485 slaves stay silent).
        ok, _, msg = dcs.probe({**rtu, "slave_id": 4, "timeout": 0.3})
        assert not ok and "slave 4" in msg and "timeout after 0.3 s: nothing received" in msg
        # A pty carries no parity bit: said so, rather than a silent mismatch.
        ok, _, msg = dcs.probe({**rtu, "parity": "E"})
        assert not ok and "refused parity E" in msg
    finally:
        stop(proc)


@pytest.mark.integration
def test_a_line_another_master_holds_is_not_probed(pty_pair: tuple[Path, Path], tmp_path: Path) -> None:
    sim_end, gw_end = pty_pair
    proc, _ = start_sim(tmp_path, RTU_ENT, "gds", "--serial", str(sim_end))
    # Another process with the gateway's end open, as hazmon-collector keeps it.
    with open(gw_end, "rb") as tty:
        holder = subprocess.Popen(["sleep", "30"], stdin=tty)
    try:
        rtu = params(name="gds", protocol="modbus_rtu", serial_port=str(gw_end), slave_id=3)
        ok, out, msg = dcs.probe(rtu)
        assert ok and out["probed"] is False
        assert {"pid": holder.pid, "name": "sleep"} in out["busy"]
        assert f"sleep (pid {holder.pid})" in msg and "not probed: the line is in use by" in msg
        # Asked to, it probes anyway (this holder never reads, so nothing collides).
        ok, out, msg = dcs.probe({**rtu, "probe_busy_line": True})
        assert ok and out["probed"] is True and isinstance(out["value"], int), msg
    finally:
        stop(holder)
        stop(proc)
    assert "sleep" not in [h["name"] for h in dcs.line_holders(str(gw_end))]


@pytest.mark.integration
def test_modbus_rtu_bad_crc_is_named(pty_pair: tuple[Path, Path]) -> None:
    sim_end, gw_end = pty_pair
    # A slave with a broken line driver: right answer, wrong CRC.
    fd = os.open(sim_end, os.O_RDWR | os.O_NOCTTY)
    stop_flag = threading.Event()

    def slave() -> None:
        while not stop_flag.is_set():
            with contextlib.suppress(OSError):
                request = os.read(fd, 64)
                if len(request) >= 8:
                    good = dcs.rtu_frame(request[0], bytes.fromhex("03020007"))
                    os.write(fd, good[:-2] + b"\x00\x00")

    t = threading.Thread(target=slave, daemon=True)
    t.start()
    try:
        ok, _, msg = dcs.probe(params(name="gds", protocol="modbus_rtu", serial_port=str(gw_end), slave_id=3,
                                      timeout=0.5, retries=1, probe_busy_line=True))
    finally:
        stop_flag.set()
        os.write(os.open(gw_end, os.O_WRONLY | os.O_NOCTTY), b"\x00" * 8)  # wake the reader
        t.join(2)
        os.close(fd)
    assert not ok
    assert "bad CRC in answer 030302000700" in msg and "(2 attempts)" in msg, msg


@pytest.mark.integration
def test_opc_ua_hello_acknowledged(tmp_path: Path) -> None:
    port = free_port()
    secret = write_secret(tmp_path / "opc.pass", "probe-test-password")
    proc, _ = start_sim(tmp_path, OPC_ENT, "dcs", "--bind", "127.0.0.1", "--port", str(port), "--secret-file",
                        str(secret))
    try:
        wait_port("127.0.0.1", port)
        endpoint = f"opc.tcp://127.0.0.1:{port}/hazmon/"
        ok, out, msg = dcs.probe(params(protocol="opc", endpoint=endpoint))
        assert ok, msg
        assert out["acknowledge"]["protocol_version"] == 0
        assert out["acknowledge"]["receive_buffer_size"] >= 8192
        assert bytes.fromhex(out["answer"])[:4] == b"ACKF"
        # The real module, through ansible, in check mode: read-only, never changed.
        result = ansible_module("hazmon_dcs_probe", f"name=dcs protocol=opc endpoint={endpoint}", "--check")
        assert result["failed"] is False, result
        assert result["changed"] is False and result["acknowledge"]["protocol_version"] == 0
    finally:
        stop(proc)
    ok, _, msg = dcs.probe(params(protocol="opc", endpoint=f"opc.tcp://127.0.0.1:{port}/hazmon/"))
    assert not ok and msg.startswith(f"source dcs: opc opc.tcp://127.0.0.1:{port}/hazmon/ (UA TCP Hello): cannot")


@contextlib.contextmanager
def one_shot_server(reply: bytes) -> Iterator[int]:
    """A TCP server that reads one request and answers `reply` (what no healthy DCS says)."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = srv.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(reply)
                time.sleep(0.5)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield port
    finally:
        srv.close()
        t.join(2)


@pytest.mark.integration
def test_opc_ua_errors_are_reported() -> None:
    err = b"ERRF" + struct.pack("<II", 0, 0x80AE0000) + struct.pack("<i", 13) + b"server busy!!"
    err = err[:4] + struct.pack("<I", len(err)) + err[8:]
    with one_shot_server(err) as port:
        ok, _, msg = dcs.probe(params(protocol="opc", endpoint=f"opc.tcp://127.0.0.1:{port}/x"))
    assert not ok and "server answered ERR 0x80AE0000 server busy!!" in msg
    with one_shot_server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        ok, _, msg = dcs.probe(params(protocol="opc", endpoint=f"opc.tcp://127.0.0.1:{port}/x"))
    assert not ok and "not a UA TCP answer" in msg


@pytest.mark.integration
def test_the_module_through_ansible_fails_with_the_sources_name(tcp_sim: tuple[int, Path]) -> None:
    port, _ = tcp_sim
    result = ansible_module("hazmon_dcs_probe", f"name=dcs protocol=modbus_tcp host=127.0.0.1 port={port} register=0")
    assert result["failed"] is False and result["changed"] is False and isinstance(result["value"], int)
    result = ansible_module("hazmon_dcs_probe", f"name=dcs protocol=modbus_tcp host=127.0.0.1 port={port} register=999")
    assert result["failed"] is True and "source dcs" in result["msg"] and "exception code 2" in result["msg"]
    result = ansible_module("hazmon_dcs_probe", "name=dcs protocol=modbus_rtu")
    assert result["failed"] is True and "serial_port" in result["msg"]


# ---------------------------------------------------------------- the link probe


def shaped_probe(rate_mbit: int, mirror_root: Path) -> dict:
    """The link probe module, run by ansible in a private network namespace whose loopback is shaped
    like a lab line (tc tbf, as LAB.md), against the mirror server there."""
    script = textwrap.dedent(f"""\
        set -eu
        ip link set lo mtu 1500 up
        tc qdisc add dev lo root tbf rate {rate_mbit}mbit burst 32kbit latency 50ms
        {sys.executable} -m hazmon.lab.mirror serve --root {mirror_root} --bind 127.0.0.1 --port 8080 \\
            >/dev/null 2>&1 &
        SRV=$!
        trap 'kill $SRV' EXIT
        for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/8080) 2>/dev/null && break; sleep 0.1; done
        {sys.executable} -c 'import json, sys; sys.path.insert(0, "{Path(__file__).parent}")
        from test_probes import ansible_module
        print(json.dumps(ansible_module("hazmon_link_probe",
              "url=http://127.0.0.1:8080/probe/8MiB min_mbps=20 tolerance=0.1 name=lab-line")))'
        """)
    res = subprocess.run(["unshare", "--net", "--fork", "bash", "-c", script], capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The server needs no mirror tree for /probe/: an empty root with the tree's marker file.
    root = tmp_path_factory.mktemp("mirror")
    (root / "debian/dists/bookworm").mkdir(parents=True)
    (root / "debian/dists/bookworm/InRelease").write_text("")
    return root


@pytest.mark.integration
def test_link_probe_passes_a_20_mbit_line_and_refuses_8(probe_root: Path) -> None:
    assert os.geteuid() == 0, "run the tests as root (README): the shaped line needs a network namespace and tc"
    good = shaped_probe(20, probe_root)
    assert good["failed"] is False, good
    assert good["changed"] is False and good["bytes"] == 8 * 2**20
    assert 18.0 <= good["mbps"] <= 20.0, good
    bad = shaped_probe(8, probe_root)
    assert bad["failed"] is True
    assert 7.0 <= bad["mbps"] <= 8.0 and "below 18.0 Mbit/s" in bad["msg"] and "N2" in bad["msg"]
    print(f"link probe over tbf: 20 Mbit/s line -> {good['mbps']} Mbit/s, 8 Mbit/s line -> {bad['mbps']} Mbit/s")


def test_link_probe_reports_an_unreachable_province() -> None:
    result = ansible_module("hazmon_link_probe", f"url=http://127.0.0.1:{free_port()}/probe/8MiB min_mbps=20")
    assert result["failed"] is True and "cannot download" in result["msg"] and result["changed"] is False
