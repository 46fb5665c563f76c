"""Benchmarks of hazmon-collector (run: .venv/bin/python bench/bench_collector.py [--quick]).

1. CPU: the collector (a subprocess) polls a local pymodbus server at TAGS_PER_S tags/s and
   publishes to a local Mosquitto; its process CPU time (/proc/<pid>/stat) over a window gives
   % of one core, and % per 1,000 tags/s. Target: <= 25 % of one core at 2,000 tags/s.
2. Replay: a one-hour backlog of 500 tags at 1 Hz (1.8 M samples, 3,600 batches of 500) is
   written to the queue, then the collector starts with the broker up; time until a subscriber
   has decoded all 1.8 M samples, and until the queue is empty (every batch confirmed committed
   and deleted). Target: <= 5 min. Run at the shipped replay budget
   (queue.replay_bytes_per_second default) and unbounded.
The subscriber stands in for the province tracker's custody side: it publishes the seqs it got
as committed (hazmon.testing.committer, once a second like the tracker), which is what lets the
collector delete them (queue.delete_on: committed, the default).
Only loopback is used.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from hazmon import wire
from hazmon.collector.config import QueueConfig
from hazmon.collector.queue import DurableQueue
from hazmon.testing.committer import Committer
from hazmon.testing.procs import free_port, stop, wait_port

HOST = "127.0.0.1"
GATEWAY = "91510100MALABE0001"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def serve_modbus(port: int, registers: int) -> None:
    """Child-process mode: a pymodbus TCP server holding `registers` holding registers."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def go():
        bits = [SimData(0, count=16, datatype=DataType.BITS)]
        regs = [SimData(0, values=[0x4148, 0] * (registers // 2), datatype=DataType.REGISTERS)]
        server = ModbusTcpServer(SimDevice(id=1, simdata=(bits, list(bits), regs, list(regs))),
                                 address=(HOST, port))
        await server.serve_forever()

    asyncio.run(go())


def start_broker(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"user {getpass.getuser()}\nlistener {port} {HOST}\nallow_anonymous true\n"
                    "persistence false\nmax_queued_messages 0\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(HOST, port)
    return proc, port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def write_config(workdir: Path, mqtt_port: int, sources: list[dict], **queue) -> Path:
    cfg = {
        "gateway": GATEWAY, "city": "5101",
        "mqtt": {"host": HOST, "port": mqtt_port},
        "queue": {"path": str(workdir / "queue.db"), **queue},
        "clock": {"sync_wait": 0},  # this machine's clock may not be synchronised: measure, not wait
        "metrics": {"port": 0},
        "sources": sources,
    }
    path = workdir / "collector.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def collector(config: Path, workdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hazmon.collector.main", "--config", str(config),
                             "--log-level", "WARNING"], stderr=(workdir / "collector.log").open("w"))


class Counter:
    """Counts distinct samples and confirms what it got as committed, once a second (the tracker's
    default per-gateway throttle)."""

    def __init__(self, port: int) -> None:
        self.samples = 0
        self.seqs: set[int] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-receiver")
        self.committer = Committer(self.client, interval=1.0)
        self.client.on_message = self._on
        self.client.connect(HOST, port)
        self.client.subscribe(wire.TOPIC_ROOT + "/#", qos=1)
        self.client.loop_start()

    def _on(self, client, userdata, msg) -> None:
        b = wire.decode(msg.payload)
        with self.lock:
            if b.seq not in self.seqs:
                self.seqs.add(b.seq)
                self.samples += len(b.samples)
        self.committer.record(wire.parse_topic(msg.topic)[0], b)

    def close(self) -> None:
        self.committer.close()
        self.client.disconnect()
        self.client.loop_stop()


def bench_cpu(workdir: Path, tags_per_s: int, window: float) -> None:
    sources, servers = [], []
    per_source = 500  # 500 float32 tags = 1,000 registers = 8 reads of <= 125 registers
    n_sources = max(1, tags_per_s // per_source)
    for i in range(n_sources):
        port = free_port()
        servers.append(subprocess.Popen([sys.executable, __file__, "--serve-modbus", str(port), "1000"]))
        wait_port(HOST, port, timeout=30)
        sources.append({"name": f"dcs{i}", "protocol": "modbus_tcp", "host": HOST, "port": port,
                        "tags": [{"code": f"S{i}-T{j}", "register": 2 * j, "type": "float32", "interval": 1.0}
                                 for j in range(per_source)]})
    broker, port = start_broker(workdir)
    counter = Counter(port)
    proc = collector(write_config(workdir, port, sources), workdir)
    try:
        time.sleep(5)  # warm-up: imports, connections
        c0, t0, s0 = cpu_seconds(proc.pid), time.monotonic(), counter.samples
        time.sleep(window)
        c1, t1, s1 = cpu_seconds(proc.pid), time.monotonic(), counter.samples
        rate = (s1 - s0) / (t1 - t0)
        core = (c1 - c0) / (t1 - t0)
        print(f"cpu: {n_sources * per_source} tags at 1 Hz, measured {rate:,.0f} samples/s delivered over "
              f"{t1 - t0:.0f} s")
        print(f"cpu: collector process {core * 100:.1f} % of one core "
              f"= {core * 100 / (rate / 1000):.1f} % per 1,000 tags/s (target <= 25 % at 2,000 tags/s)")
    finally:
        stop(proc)
        counter.close()
        stop(broker)
        for s in servers:
            stop(s)


def bench_replay(workdir: Path, tags: int, seconds: int, rate: float | None) -> None:
    db = workdir / "queue.db"
    db.unlink(missing_ok=True)
    q = DurableQueue(db, max_samples=10**9, synchronous="NORMAL")
    t_fill = time.monotonic()
    now = time.time() - seconds
    chunk = []
    for s in range(seconds):
        chunk.append(("dcs", [(f"T{j:04d}", now + s, 20.0 + j * 0.001 + s * 1e-6) for j in range(tags)]))
        if len(chunk) == 100:
            q.put_many(chunk)
            chunk = []
    if chunk:
        q.put_many(chunk)
    total = q.depth_samples
    size = db.stat().st_size
    q.close()
    fill = time.monotonic() - t_fill
    broker, port = start_broker(workdir)
    counter = Counter(port)
    queue_cfg = {"replay_bytes_per_second": rate} if rate else {"replay_bytes_per_second": 1e12}
    dead = {"name": "dcs", "protocol": "modbus_tcp", "host": HOST, "port": free_port(),
            "tags": [{"code": "X", "register": 0}]}  # no live source: measure the replay alone
    t0 = time.monotonic()
    proc = collector(write_config(workdir, port, [dead], **queue_cfg), workdir)
    label = f"{rate / 1e6:g} MB/s budget" if rate else "unbounded"
    try:
        while counter.samples < total:
            if time.monotonic() - t0 > 900:
                raise SystemExit(f"replay ({label}): only {counter.samples} of {total} after 900 s")
            time.sleep(0.2)
        took = time.monotonic() - t0
        queue = sqlite3.connect(db)
        left = queue.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
        while queue.execute("SELECT COUNT(*) FROM batches").fetchone()[0]:
            if time.monotonic() - t0 > 900:
                raise SystemExit(f"replay ({label}): the queue was not confirmed empty after 900 s")
            time.sleep(0.1)
        emptied = time.monotonic() - t0
        queue.close()
        print(f"replay ({label}): {total:,} samples ({seconds} batches of {tags}, queue file "
              f"{size / 1e6:.0f} MB, filled in {fill:.0f} s) delivered in {took:.1f} s "
              f"= {total / took:,.0f} samples/s; batches not yet confirmed at that moment: {left}; "
              f"queue confirmed empty after {emptied:.1f} s (target <= 300 s)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        counter.close()
        stop(broker)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve-modbus", nargs=2, type=int, metavar=("PORT", "REGISTERS"), help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="shorter windows and a 10-minute backlog")
    p.add_argument("--tags-per-s", type=int, default=2000)
    args = p.parse_args()
    if args.serve_modbus:
        serve_modbus(*args.serve_modbus)
        return
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        work = Path(tmp)
        bench_cpu(work, args.tags_per_s, 10 if args.quick else 30)
        seconds = 600 if args.quick else 3600
        bench_replay(work, 500, seconds, None)
        bench_replay(work, 500, seconds, QueueConfig().replay_bytes_per_second)
    print(json.dumps({"note": "figures above; run on this machine", "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
