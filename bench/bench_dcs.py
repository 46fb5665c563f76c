"""Benchmarks of the lab's DCS/GDS simulator (run: .venv/bin/python bench/bench_dcs.py [--quick]).

For each protocol of the lab inventory (Modbus TCP, Modbus RTU over a socat pty pair, OPC UA):
1. start-up: spawn of `python -m hazmon.lab.sim.dcs` until its control socket answers;
2. memory: the simulator's resident set (VmRSS) once serving; the lab runs one per data source,
   so this is what a 40-gateway lab pays per source;
3. reads: sequential reads of the whole tag table by one client, as reads/s and mean latency.
Then the process model alone: the cost of one tick for a 500-tag source (the collector's benchmark
size). Only loopback and a local pty pair are used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from asyncua import Client
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

from hazmon.inventory.model import REGISTER_WIDTH, DataType, Tag, TagKind
from hazmon.inventory.validate import load_valid
from hazmon.lab.sim.common import control, write_secret
from hazmon.lab.sim.dcs_signals import Process
from hazmon.testing.procs import free_port, stop

LAB = Path(__file__).resolve().parents[1] / "inventories" / "lab"
TCP_ENT, RTU_ENT, OPC_ENT = "91510100MALABE0001", "91510500MALABE0003", "91510500MALABE0002"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(tmp: Path, enterprise: str, source: str, *extra: str) -> tuple[subprocess.Popen, float]:
    sock = tmp / f"{enterprise}.sock"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazmon.lab.sim.dcs", "--inventory", str(LAB), "--enterprise", enterprise,
         "--source", source, "--control", str(sock), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"simulator for {enterprise} exited with {proc.returncode}")
        try:
            if control(sock, {"cmd": "values"}, timeout=1)["ok"]:
                return proc, time.monotonic() - t0
        except OSError:
            time.sleep(0.02)


def timed(n: int, read: Callable[[], None]) -> tuple[float, float]:
    t0 = time.monotonic()
    for _ in range(n):
        read()
    dt = time.monotonic() - t0
    return n / dt, 1000 * dt / n


def modbus_reader(client: ModbusTcpClient | ModbusSerialClient, unit: int) -> Callable[[], None]:
    def read() -> None:
        for fn, start_reg, count in ((client.read_holding_registers, 0, 14), (client.read_input_registers, 0, 1)):
            rr = fn(start_reg, count=count, device_id=unit)
            if rr.isError():
                raise SystemExit(f"read failed: {rr}")
    return read


def bench_tcp(tmp: Path, n: int) -> None:
    port = free_port()
    proc, up = start(tmp, TCP_ENT, "dcs", "--port", str(port))
    try:
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        client.connect()
        rate, ms = timed(n, modbus_reader(client, 1))
        client.close()
        print(f"modbus_tcp : start-up {up:5.2f} s, RSS {rss_mb(proc.pid):5.1f} MB, "
              f"{rate:7.0f} table reads/s (2 requests, 8 tags), {ms:6.2f} ms each")
    finally:
        stop(proc)


def bench_rtu(tmp: Path, n: int) -> None:
    sim_end, gw_end = tmp / "sim-pty", tmp / "gw-pty"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={sim_end}", f"pty,raw,echo=0,link={gw_end}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (sim_end.exists() and gw_end.exists()):
            time.sleep(0.02)
        proc, up = start(tmp, RTU_ENT, "gds", "--serial", str(sim_end))
        try:
            client = ModbusSerialClient(str(gw_end), baudrate=9600, parity="N", timeout=2, retries=0)
            client.connect()

            def read() -> None:
                rr = client.read_holding_registers(0, count=6, device_id=3)
                if not rr.isError():
                    raise SystemExit("a read across the gap at register 3 must fail")
                for start_reg, count in ((0, 3), (4, 2)):
                    if client.read_holding_registers(start_reg, count=count, device_id=3).isError():
                        raise SystemExit("read failed")

            rate, ms = timed(n, read)
            client.close()
            print(f"modbus_rtu : start-up {up:5.2f} s, RSS {rss_mb(proc.pid):5.1f} MB, "
                  f"{rate:7.0f} table reads/s (3 requests over a pty), {ms:6.2f} ms each")
        finally:
            stop(proc)
    finally:
        stop(socat)


def bench_opc(tmp: Path, n: int) -> None:
    port = free_port()
    password = os.urandom(9).hex()
    secret = write_secret(tmp / "opc.pass", password)
    proc, up = start(tmp, OPC_ENT, "dcs", "--port", str(port), "--secret-file", str(secret))
    inv, _ = load_valid(LAB)
    ent = inv.enterprise(OPC_ENT)
    assert ent is not None
    source = ent.data_sources[0]
    url = f"opc.tcp://127.0.0.1:{port}/hazmon/"

    async def run() -> tuple[float, float]:
        client = Client(url, timeout=4)
        client.set_user(source.opc.username if source.opc else "")
        client.set_password(password)
        async with client:
            nodes = [client.get_node(t.node or "") for t in source.tags]
            t0 = time.monotonic()
            for _ in range(n):
                await client.read_values(nodes)
            dt = time.monotonic() - t0
        return n / dt, 1000 * dt / n

    try:
        rate, ms = asyncio.run(run())
        print(f"opc_ua     : start-up {up:5.2f} s, RSS {rss_mb(proc.pid):5.1f} MB, "
              f"{rate:7.0f} table reads/s (1 request, 5 nodes), {ms:6.2f} ms each")
    finally:
        stop(proc)


def bench_ticks(n_tags: int = 500, ticks: int = 200) -> None:
    kinds = [TagKind.LEVEL, TagKind.TEMPERATURE, TagKind.PRESSURE, TagKind.COMBUSTIBLE_GAS]
    types = list(DataType)
    tags, reg = [], 0
    for i in range(n_tags):
        dtype = types[i % len(types)]
        tags.append(Tag(code=f"T-{i}", hazard_source="HS", kind=kinds[i % 4], register=reg, type=dtype,
                        scale=0.1 if dtype in (DataType.INT16, DataType.INT32) else 1.0, unit="u",
                        range_min=0, range_max=100, alarm_high=80))
        reg += REGISTER_WIDTH[dtype]
    process = Process(tags, seed=1)
    t0 = time.monotonic()
    for _ in range(ticks):
        process.step(1.0)
    step_ms = 1000 * (time.monotonic() - t0) / ticks
    t0 = time.monotonic()
    for _ in range(ticks):
        process.registers("holding", 0, 125)
    regs_ms = 1000 * (time.monotonic() - t0) / ticks
    print(f"process    : {n_tags} tags: one tick {step_ms:.2f} ms; encoding one 125-register read "
          f"{regs_ms:.2f} ms (done at every Modbus request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reads")
    n = 100 if parser.parse_args().quick else 1000
    with tempfile.TemporaryDirectory(prefix="bench-dcs-") as tmp:
        bench_tcp(Path(tmp), n)
        bench_rtu(Path(tmp), n)
        bench_opc(Path(tmp), n)
    bench_ticks()


if __name__ == "__main__":
    main()
