"""Real servers for the collector's tests: pymodbus (TCP and RTU), asyncua, a silent slave, Mosquitto,
and a counting MQTT receiver that dedups by (gw, seq). Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import getpass
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from hazmon import wire
from hazmon.testing.committer import Committer
from hazmon.testing.procs import free_port, stop, wait_port

HOST = "127.0.0.1"


class LoopThread:
    """An asyncio loop in a thread, hosting the test servers while the code under test runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30.0):
        fut: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class RegisterMap:
    """Holding and input registers of one slave; `counter_at` registers count the reads (uint32)."""

    holding: list[int]
    inputs: list[int] = field(default_factory=lambda: [0] * 8)
    counter_at: int | None = None  # holding register pair incremented before every read that covers it
    reads: int = 0

    def device(self, dev_id: int = 1) -> SimDevice:
        async def action(fc, start, address, count, regs, set_values):
            if set_values is None and fc == 3 and self.counter_at is not None:
                lo = self.counter_at - start
                if address <= self.counter_at < address + count:
                    self.reads += 1
                    regs[lo], regs[lo + 1] = (self.reads >> 16) & 0xFFFF, self.reads & 0xFFFF
            return None

        bits = [SimData(0, count=16, datatype=SimType.BITS)]
        return SimDevice(
            id=dev_id,
            simdata=(bits, list(bits), [SimData(0, values=list(self.holding), datatype=SimType.REGISTERS)],
                     [SimData(0, values=list(self.inputs), datatype=SimType.REGISTERS)]),
            action=action,
        )


def start_modbus_tcp(lt: LoopThread, regs: RegisterMap, port: int | None = None) -> tuple[ModbusTcpServer, int]:
    port = port or free_port()

    async def go():
        server = ModbusTcpServer(regs.device(), address=(HOST, port))
        await server.serve_forever(background=True)
        return server

    server = lt.run(go())
    wait_port(HOST, port)
    return server, port


def start_modbus_rtu(lt: LoopThread, regs: RegisterMap, tty: str, baud: int = 115200) -> ModbusSerialServer:
    async def go():
        server = ModbusSerialServer(regs.device(), port=tty, baudrate=baud, parity="N", bytesize=8,
                                    stopbits=1, timeout=1)
        await server.serve_forever(background=True)
        return server

    return lt.run(go())


def stop_server(lt: LoopThread, server) -> None:
    lt.run(server.shutdown())


@contextlib.contextmanager
def pty_pair(workdir: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals made by socat (a null-modem RS-485 line), stopped by its PID."""
    a, b = workdir / "ttyA", workdir / "ttyB"
    proc = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("socat did not make the pty pair")
            time.sleep(0.05)
        yield str(a), str(b)
    finally:
        stop(proc)


@dataclass
class OpcServer:
    url: str
    nodes: dict[str, str]  # variable name -> node id string
    server: object


def start_opcua(lt: LoopThread, values: dict[str, object], port: int | None = None) -> OpcServer:
    from asyncua import Server, ua

    port = port or free_port()
    url = f"opc.tcp://{HOST}:{port}/hazmon-test/"

    async def go():
        server = Server()
        await server.init()
        server.set_endpoint(url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:hazmon:test")
        obj = await server.nodes.objects.add_object(idx, "DCS")
        nodes = {}
        for name, value in values.items():
            var = await obj.add_variable(ua.NodeId(name, idx), name, value)
            nodes[name] = var.nodeid.to_string()
        await server.start()
        return server, nodes

    server, nodes = lt.run(go(), timeout=60)
    wait_port(HOST, port)
    return OpcServer(url, nodes, server)


class SilentSlave:
    """A TCP 'slave' that accepts connections and never answers (a hung DCS gateway)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = self.sock.accept()
                self.conns.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


class Broker:
    """Mosquitto on loopback with a persistent store, so that the test receiver's own session
    survives a broker restart (the collector is not allowed to rely on it, and does not)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            # Run as ourselves: as root mosquitto would switch to its own user and could not
            # write its store into the test's private directory.
            f"user {getpass.getuser()}\n"
            f"listener {self.port} {HOST}\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n"
            f"log_dest file {self.workdir / 'mosquitto.log'}\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(HOST, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class Receiver:
    """Subscribes to hazmon/v1/#, decodes with hazmon.wire, counts every copy and dedups by (gw, seq).

    With `commit` (the default) it also acts as the province tracker's custody side: it publishes
    what it received as committed seqs (hazmon.testing.committer.Committer), so that collectors
    with the default queue.delete_on: committed delete what it got."""

    def __init__(self, port: int, client_id: str = "test-receiver", commit: bool = True) -> None:
        self.batches: dict[tuple[str, int], wire.Batch] = {}
        self.copies = 0
        self.copies_of: collections.Counter[int] = collections.Counter()  # seq -> copies received
        self.sizes: list[int] = []  # payload bytes of every copy
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(wire.TOPIC_ROOT + "/#", qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(HOST, port)
        self.committer = Committer(self.client) if commit else None
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("receiver did not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            batch = wire.decode(msg.payload)
            city, ent, src = wire.parse_topic(msg.topic)
            if (ent, src) != (batch.gateway, batch.source):
                self.errors.append(f"topic {msg.topic} carries {batch.gateway}/{batch.source}")
        except wire.WireError as exc:
            self.errors.append(str(exc))
            return
        with self._lock:
            self.copies += 1
            self.copies_of[batch.seq] += 1
            self.sizes.append(len(msg.payload))
            self.batches.setdefault((batch.gateway, batch.seq), batch)
        if self.committer is not None:
            self.committer.record(city, batch)

    def close(self) -> None:
        if self.committer is not None:
            self.committer.close()
        self.client.disconnect()
        self.client.loop_stop()

    def samples(self) -> list[tuple[str, wire.Sample]]:
        with self._lock:
            return [(b.source, s) for b in self.batches.values() for s in b.samples]

    def seqs(self, gateway: str) -> set[int]:
        with self._lock:
            return {seq for gw, seq in self.batches if gw == gateway}

    def latest(self) -> dict[str, float]:
        """Last value of every tag (by sample time)."""
        out: dict[str, tuple[float, float]] = {}
        for _src, s in self.samples():
            if s.tag not in out or s.ts >= out[s.tag][0]:
                out[s.tag] = (s.ts, s.value)
        return {k: v for k, (_, v) in out.items()}

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        wait_for(cond, timeout, what)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric(text: str, name: str, labels: str = "") -> float:
    pat = re.compile(rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''}\s+(\S+)$", re.M)
    m = pat.search(text)
    if m is None:
        raise KeyError(f"{name}{{{labels}}} not in the scrape")
    return float(m.group(1))


def env_without_proxy() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


class LineProxy:
    """A TCP relay standing for the dedicated line (N2). While `blackhole` is set, bytes in both
    directions vanish, as when a line drops packets: PUBLISHes sent then never reach the broker."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blackhole = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.blackhole.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop = True
        for s in [*self._conns, self.sock]:
            with contextlib.suppress(OSError):
                s.close()
