"""Custody under load: hundreds of gateways publish while the province tracker is down.

Proves the data path's promise on real parts: the broker configured by the `province_broker`
role (hazmon.testing.broker), the real `hazmon-tracker` program, and per gateway the real
collector configuration rendered from the model, the real durable queue and the real MQTT uplink.
Only the field devices are stood in for: each gateway's sources produce their tags' samples at
the tags' own intervals (the inventory's), values within their ranges.

The run: the gateways publish; the tracker is killed (SIGKILL, a crash) for `outage` seconds,
during which the broker is killed and restarted from its persistence file (losing what it had not
saved); the tracker comes back on its state file; the gateways stop producing and wait until their
queues are empty. Then every sample every queue ever held is looked for in the tracker's state:
no seq missing, every sample accepted once (copies are counted as duplicates, never twice).

`python -m hazmon.testing.custody worker SPEC.json` is one process of gateways (the run spreads
them over a few processes); the test and `bench/bench_custody.py` call `run`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hazmon.broker import has_gateway_account
from hazmon.collector.config import CollectorConfig, dump_yaml, load_config
from hazmon.collector.queue import DurableQueue
from hazmon.collector.render import render_config
from hazmon.collector.stats import UplinkStats
from hazmon.collector.uplink import Uplink
from hazmon.inventory.secrets import TRACKER_MQTT_CREDENTIAL, TRACKER_MQTT_USER, ensure_lab_vault, mqtt_credential
from hazmon.inventory.validate import load_valid
from hazmon.lab.services import write_private
from hazmon.testing.broker import RoleBroker, render
from hazmon.testing.procs import free_port, stop
from hazmon.tracker.store import read_seen

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Timing:
    warmup: float = 20.0  # seconds of normal flow before the tracker dies
    outage: float = 60.0  # seconds the tracker is down
    after: float = 20.0  # seconds of production after it is back
    broker_crash_at: float | None = 0.6  # share of the outage when the broker is killed; None: never
    drain_timeout: float = 600.0  # after production stops, how long queues may take to empty

    @property
    def produce(self) -> float:
        return self.warmup + self.outage + self.after


@dataclass
class GatewayResult:
    gateway: str
    epoch: int
    last_seq: int
    enqueued_samples: int
    left_batches: int  # still in the queue when the worker gave up waiting (0: all custody closed)
    batches_sent: int
    batches_published: int
    resent_batches: int


@dataclass
class CustodyResult:
    gateways: int
    samples_per_second: float
    timing: Timing
    enqueued_samples: int = 0
    accepted_samples: int = 0
    duplicate_samples: int = 0  # copies the tracker recognised and dropped (counted once each)
    missing_batches: int = 0  # seqs a queue wrote that the tracker never committed
    lost_samples: int = 0  # enqueued - accepted, over gateways whose data is not all there
    extra_samples: int = 0  # accepted beyond what was enqueued: counted twice
    left_batches: int = 0
    resent_batches: int = 0
    broker_peak_rss_bytes: int = 0
    broker_peak_db_bytes: int = 0
    broker_crashes: int = 0
    drain_seconds: float = 0.0  # from the tracker's return until every queue was empty
    problems: list[str] = field(default_factory=list)

    @property
    def zero_loss(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------ worker process


@dataclass
class _Gateway:
    """One simulated gateway: the real queue and uplink, and its sources' tags as (code, interval)."""

    cfg: CollectorConfig
    queue: DurableQueue
    stats: UplinkStats
    uplink: Uplink
    series: list[tuple[str, list[tuple[str, int]]]]

    @classmethod
    def of(cls, cfg_file: str) -> _Gateway:
        cfg = load_config(cfg_file)
        queue = DurableQueue(cfg.queue.path, cfg.queue.max_samples, cfg.queue.synchronous)
        stats = UplinkStats()
        series = [(src.name, [(t.code, max(1, round(t.interval))) for t in src.tags]) for src in cfg.sources]
        return cls(cfg, queue, stats, Uplink(cfg, queue, stats), series)

    def produce(self, tick: int, now: float, rng: random.Random) -> None:
        """What the sources read at this tick: every tag whose interval has come round."""
        for source, tags in self.series:
            due = [(code, now, 100.0 * rng.random()) for code, every in tags if tick % every == 0]
            if due:
                self.queue.put(source, due)
                self.uplink.notify()

    def result(self) -> GatewayResult:
        q, st = self.queue, self.stats
        return GatewayResult(self.cfg.gateway, q.epoch, q.last_seq, q.enqueued_samples, q.depth_batches,
                             st.batches_sent, st.batches_published, st.resent_batches)


def worker(spec_file: Path) -> int:
    """Run this process's gateways: produce for spec.produce seconds, then drain; write results."""
    spec = json.loads(spec_file.read_text())
    rng = random.Random(spec["seed"])
    gws = [_Gateway.of(f) for f in spec["configs"]]
    for gw in gws:
        gw.uplink.start()
    start, tick = time.time(), 0
    while time.time() - start < spec["produce"]:
        now = time.time()
        for gw in gws:
            gw.produce(tick, now, rng)
        tick += 1
        time.sleep(max(0.0, start + tick - time.time()))
    # Production over: wait until every queue is empty (custody closed) or the drain timeout.
    deadline = time.monotonic() + spec["drain_timeout"]
    while time.monotonic() < deadline and any(gw.queue.depth_batches for gw in gws):
        time.sleep(0.5)
    results = []
    for gw in gws:
        gw.uplink.stop(0)
        results.append(gw.result())
        gw.queue.close()
    Path(spec["result"]).write_text(json.dumps([asdict(r) for r in results]))
    return 0


# ------------------------------------------------------------------ the run


def _gateway_configs(inventory_root: Path, workdir: Path, broker: RoleBroker, count: int) -> tuple[list[Path], float]:
    """Each gateway's collector config, rendered from the model, pointed at the broker on loopback."""
    inv, _ = load_valid(inventory_root)
    vault = ensure_lab_vault(inv)
    ents = [e for e in sorted(inv.enterprises, key=lambda e: e.code) if has_gateway_account(e) and e.data_sources]
    if len(ents) < count:
        raise ValueError(f"{inventory_root}: {len(ents)} gateways with an account, {count} wanted")
    configs, rate = [], 0.0
    for ent in ents[:count]:
        home = workdir / "gateways" / ent.code
        cfg = render_config(inv, ent, secrets=home / "secrets", state_dir=home)
        (home / "secrets").mkdir(parents=True, exist_ok=True)
        os.chmod(home / "secrets", 0o700)
        write_private(home / "secrets" / "mqtt.password", vault[mqtt_credential(ent)] + "\n")
        cfg = cfg.model_copy(update={
            "mqtt": cfg.mqtt.model_copy(update={"host": broker.host, "port": broker.port, "tls": False}),
            # A process crash is what this run survives; NORMAL keeps 300 queues' fsyncs off the disk.
            "queue": cfg.queue.model_copy(update={"synchronous": "NORMAL", "flush_timeout": 0}),
        })
        file = home / "collector.yml"
        file.write_text(dump_yaml(cfg), encoding="utf-8")
        configs.append(file)
        rate += sum(1.0 / float(t.interval or 1.0) for s in cfg.sources for t in s.tags)
    return configs, rate


@dataclass
class _Tracker:
    argv: list[str]
    url: str
    state: Path
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hazmon-tracker exited with {self.proc.returncode}: see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/metrics", timeout=2) as resp:  # loopback
                    if "hazmon_tracker_mqtt_connected 1.0" in resp.read().decode():
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"hazmon-tracker did not subscribe within 60 s: see {self.log}")

    def crash(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=30)
        self.proc = None


def _tracker(inventory_root: Path, workdir: Path, broker: RoleBroker, vault: dict[str, str]) -> _Tracker:
    port = free_port()
    password = write_private(workdir / "tracker-mqtt.password", vault[TRACKER_MQTT_CREDENTIAL] + "\n")
    state = workdir / "tracker.db"
    argv = [str(BIN / "hazmon-tracker"), "--inventory", str(inventory_root), "--state", str(state),
            "--broker-host", broker.host, "--broker-port", str(broker.port),
            "--username", TRACKER_MQTT_USER, "--password-file", str(password),
            "--listen-host", "127.0.0.1", "--listen-port", str(port)]
    return _Tracker(argv, f"http://127.0.0.1:{port}", state, workdir / "tracker.log")


_Seen = dict[str, tuple[int, list[int], list[int], int]]
_Counts = dict[str, tuple[int, int, int]]


def _tracker_view(state: Path) -> tuple[_Seen, _Counts]:
    """From the tracker's state file: gateway -> (epoch, los, his, abandoned); enterprise ->
    (accepted, duplicates, unknown_tag_samples) summed over its sources."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        counts: dict[str, tuple[int, int, int]] = {}
        for ent, accepted, dups, unknown in db.execute(
                "SELECT enterprise, SUM(accepted), SUM(duplicates), SUM(unknown_tag_samples) "
                "FROM sources GROUP BY enterprise"):
            counts[ent] = (int(accepted), int(dups), int(unknown))
    finally:
        db.close()
    gateways = {gw: (epoch, s.los, s.his, s.abandoned) for gw, (epoch, s) in read_seen(state).items()}
    return gateways, counts


def synth_inventory(out: Path, enterprises: int = 360) -> Path:
    """A synthetic province (hazmon inventory synth) whose broker is this run's, on loopback.

    360 enterprises give 314 gateways with a broker account (the others are fireworks sites
    without one, or plants in long-term shutdown, R4). The broker here speaks plain MQTT on
    127.0.0.1 (N8's TLS is the extranet's), so the model says so, for the tracker to follow."""
    from hazmon.inventory.synth import generate

    generate(out, enterprises=enterprises, seed=1)
    province = out / "province.yml"
    text = province.read_text(encoding="utf-8")
    mqtt = "    mqtt:\n      host: 198.18.0.10\n      port: 8883\n      tls: true\n"
    if mqtt not in text:
        raise ValueError(f"{province}: the synthetic platform.mqtt block changed; update synth_inventory")
    province.write_text(text.replace(mqtt, mqtt.replace("tls: true", "tls: false")), encoding="utf-8")
    return out


def run(inventory_root: Path, workdir: Path, gateways: int = 300, timing: Timing | None = None,
        processes: int = 2, log=print) -> CustodyResult:
    timing = timing or Timing()
    inventory_root = inventory_root.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    inv, _ = load_valid(inventory_root)
    vault = ensure_lab_vault(inv)
    log(f"rendering the province broker's configuration with the province_broker role ({inventory_root.name})")
    broker = RoleBroker(render(inventory_root, workdir / "broker"))
    broker.start()
    tracker = _tracker(inventory_root, workdir, broker, vault)
    workers: list[subprocess.Popen] = []
    sampler_stop = threading.Event()
    try:
        configs, rate = _gateway_configs(inventory_root, workdir, broker, gateways)
        result = CustodyResult(len(configs), rate, timing)
        tracker.start()
        log(f"{len(configs)} gateways, {rate:.0f} samples/s; tracker down {timing.outage:.0f} s after "
            f"{timing.warmup:.0f} s" + (", broker killed meanwhile" if timing.broker_crash_at is not None else ""))
        for i in range(processes):
            spec = workdir / f"worker-{i}.json"
            spec.write_text(json.dumps({
                "configs": [str(c) for c in configs[i::processes]], "seed": i, "produce": timing.produce,
                "drain_timeout": timing.drain_timeout, "result": str(workdir / f"worker-{i}.result.json"),
            }))
            with open(workdir / f"worker-{i}.log", "ab") as out:
                workers.append(subprocess.Popen([sys.executable, "-m", "hazmon.testing.custody", "worker", str(spec)],
                                                stdout=out, stderr=subprocess.STDOUT))

        def sample() -> None:
            while not sampler_stop.wait(1.0):
                broker.sample()

        threading.Thread(target=sample, name="broker-sampler", daemon=True).start()
        t0 = time.monotonic()
        _sleep_until(t0 + timing.warmup)
        tracker.crash()
        log("tracker killed")
        if timing.broker_crash_at is not None:
            _sleep_until(t0 + timing.warmup + timing.outage * timing.broker_crash_at)
            broker.crash()
            broker.start()
            log("broker killed and restarted from its persistence file")
        _sleep_until(t0 + timing.warmup + timing.outage)
        tracker.start()
        back = time.monotonic()
        log("tracker back")
        for w in workers:
            w.wait(timing.produce + timing.drain_timeout + 120)
        result.drain_seconds = time.monotonic() - back - timing.after
        tracker.stop()  # commits what it holds
        sampler_stop.set()
        return _compare(result, workdir, tracker.state, broker, processes)
    finally:
        sampler_stop.set()
        for w in workers:
            stop(w, timeout=30)
        tracker.stop()
        broker.stop()


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def _compare(result: CustodyResult, workdir: Path, state: Path, broker: RoleBroker, processes: int) -> CustodyResult:
    gws: list[GatewayResult] = []
    for i in range(processes):
        file = workdir / f"worker-{i}.result.json"
        if not file.exists():
            result.problems.append(f"worker {i} wrote no result (see {workdir / f'worker-{i}.log'})")
            continue
        gws += [GatewayResult(**r) for r in json.loads(file.read_text())]
    seen, counts = _tracker_view(state)
    for g in gws:
        result.enqueued_samples += g.enqueued_samples
        result.left_batches += g.left_batches
        result.resent_batches += g.resent_batches
        accepted, dups, unknown = counts.get(g.gateway, (0, 0, 0))
        result.accepted_samples += accepted
        result.duplicate_samples += dups
        epoch, los, his, abandoned = seen.get(g.gateway, (0, [], [], 0))
        missing = g.last_seq - sum(hi - lo + 1 for lo, hi in zip(los, his, strict=True) if lo >= 1)
        if epoch != g.epoch and g.last_seq:
            result.problems.append(f"{g.gateway}: tracker holds epoch {epoch}, the queue is {g.epoch}")
        if missing or abandoned or (his and his[-1] > g.last_seq):
            result.missing_batches += max(missing, 0)
            result.problems.append(f"{g.gateway}: {missing} of {g.last_seq} batches never committed "
                                   f"(intervals {list(zip(los, his, strict=True))[:5]}, abandoned {abandoned})")
        if accepted < g.enqueued_samples:
            result.lost_samples += g.enqueued_samples - accepted
            result.problems.append(f"{g.gateway}: {g.enqueued_samples - accepted} of {g.enqueued_samples} samples lost")
        elif accepted > g.enqueued_samples:
            result.extra_samples += accepted - g.enqueued_samples
            result.problems.append(f"{g.gateway}: {accepted - g.enqueued_samples} samples counted twice")
        if unknown:
            result.problems.append(f"{g.gateway}: {unknown} samples of tags the tracker does not know")
        if g.left_batches:
            result.problems.append(f"{g.gateway}: {g.left_batches} batches still queued (not confirmed)")
    if len(gws) != result.gateways:
        result.problems.append(f"{result.gateways - len(gws)} gateways reported nothing")
    result.broker_peak_rss_bytes = broker.peak_rss_bytes
    result.broker_peak_db_bytes = broker.peak_db_bytes
    result.broker_crashes = broker.crashes
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hazmon.testing.custody")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="one process of simulated gateways (internal)")
    w.add_argument("spec", type=Path)
    args = p.parse_args(argv)
    return worker(args.spec)


if __name__ == "__main__":
    sys.exit(main())
