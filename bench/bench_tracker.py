"""Tracker figures: sustained ingest on one core, and memory with 440,000 tracked tags.

Run: .venv/bin/python bench/bench_tracker.py [--enterprises 8000] [--tags 55] [--batch 50]

Expected tags are generated here (8,000 enterprises × 55 tags = 440,000, the national system's
monitoring-point count), not read from an inventory. Paths measured, in this one process and thread:
  ingest   FeedState.ingest fed decoded batches (dedup + state update)
  receive  Tracker.receive fed encoded MQTT payloads (topic parse + JSON decode + dedup + state
           update), with the durable flush (SQLite commit, then acks) every 16 messages as on the
           MQTT path
  mqtt     (unless --no-mqtt) end to end through a real Mosquitto on loopback: a publisher process
           sends QoS 1 batches as fast as it can; the tracker's paho thread runs on_message ->
           Tracker.receive, commits and acknowledges; figure = samples / wall time
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from hazmon.inventory.model import TagKind
from hazmon.tracker.expected import ExpectedEnterprise, ExpectedSource, ExpectedTag
from hazmon.tracker.metrics import TrackerCollector
from hazmon.tracker.service import Tracker
from hazmon.tracker.settings import Thresholds, TrackerSettings
from hazmon.tracker.state import FeedState
from hazmon.wire import Batch, Sample, topic

KINDS = (TagKind.LEVEL, TagKind.TEMPERATURE, TagKind.PRESSURE, TagKind.FLOW, TagKind.COMBUSTIBLE_GAS)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def synth(n_ent: int, n_tags: int, th: Thresholds) -> dict[str, ExpectedEnterprise]:
    out = {}
    split = (n_tags * 2) // 3  # a DCS and a GDS per site
    for i in range(n_ent):
        code = f"915101{i:08d}BENCH"[:18]
        ent = ExpectedEnterprise(code, f"bench {i}", "5101", "online", (), True)
        for name, lo, hi in (("dcs", 0, split), ("gds", split, n_tags)):
            tags = {}
            for j in range(lo, hi):
                kind = KINDS[j % len(KINDS)]
                tags[f"T{j:04d}"] = ExpectedTag(
                    f"T{j:04d}", kind, "u", 1.0, th.window(1.0), 0.0, 100.0, th.flatline_after(kind),
                    th.max_rate(kind, 0.0, 100.0), alarm_high=80.0, alarm_high_high=90.0)
            ent.sources[name] = ExpectedSource(code, "5101", name, True, tags)
        out[code] = ent
    return out


def batches(ents: dict[str, ExpectedEnterprise], per_batch: int, rounds: int, t0: float):
    """Every tag once per round, in batches of `per_batch` samples per source; seq per gateway."""
    seqs = dict.fromkeys(ents, 0)
    for r in range(rounds):
        ts = t0 + r
        for code, ent in ents.items():
            for src in ent.sources.values():
                codes = list(src.tags)
                for k in range(0, len(codes), per_batch):
                    seqs[code] += 1
                    samples = tuple(Sample(c, ts, 10.0 + (r + n) % 50) for n, c in enumerate(codes[k:k + per_batch]))
                    yield Batch(code, seqs[code], src.name, samples, ts)


# Sample times of the ingest and receive runs, and the tracker's clock when they arrive: after
# every sample (the rounds are a second apart), so that none is refused as stamped in the future.
T0 = 1.8e9
ARRIVAL = T0 + 60


def bench_ingest(ents, per_batch: int) -> None:
    sub = dict(list(ents.items())[:500])
    state = FeedState(sub)
    data = list(batches(sub, per_batch, 4, T0))
    n = sum(len(b.samples) for b in data)
    gc.collect()
    start = time.process_time()
    for b in data:
        state.ingest(b, ARRIVAL)
    dt = time.process_time() - start
    assert sum(src.accepted for src in state.sources.values()) == n, "the bench must measure accepted samples"
    print(f"ingest (decoded batches, dedup + state): {n / dt:,.0f} samples/s  ({n:,} samples, {dt:.2f} s CPU)")
    start = time.process_time()
    for b in data:
        state.ingest(b, ARRIVAL)
    dt = time.process_time() - start
    print(f"ingest of duplicates (all dropped):      {n / dt:,.0f} samples/s")


def bench_receive(ents, per_batch: int, settings: TrackerSettings, workdir: Path) -> None:
    sub = dict(list(ents.items())[:500])
    tracker = Tracker(sub, settings, workdir / "receive.db", clock=lambda: ARRIVAL)
    msgs = [(topic("5101", b.gateway, b.source), b.encode(), len(b.samples))
            for b in batches(sub, per_batch, 4, T0)]
    n = sum(m[2] for m in msgs)
    gc.collect()
    start = time.process_time()
    wall = time.perf_counter()
    for i, (top, payload, _) in enumerate(msgs):
        tracker.receive(top, payload, i % 65535 + 1, 1)  # QoS 1: flush + ack every 16 messages
    tracker.flush()
    dt, wall = time.process_time() - start, time.perf_counter() - wall
    assert sum(src.accepted for src in tracker.state.sources.values()) == n, "the bench must measure accepted samples"
    print(f"receive (parse + decode + dedup + state + flush every {settings.max_unacked} msgs): "
          f"{n / dt:,.0f} samples/s CPU, {n / wall:,.0f} samples/s wall  "
          f"({n:,} samples in {len(msgs):,} messages of {per_batch})")
    tracker.close()


def bench_memory(ents, per_batch: int, settings: TrackerSettings, workdir: Path, base: float) -> None:
    n_tags = sum(len(s.tags) for e in ents.values() for s in e.sources.values())
    tracker = Tracker(ents, settings, workdir / "memory.db")
    after_model = rss_mb()
    t0 = time.time()
    for b in batches(ents, per_batch, 1, t0):
        tracker.state.ingest(b, t0)
    gc.collect()
    tracked = sum(len(s.tags) for s in tracker.state.sources.values())
    full = rss_mb()
    print(f"memory: {tracked:,} tracked tags of {n_tags:,} expected ({len(ents):,} enterprises, "
          f"{len(tracker.state.sources):,} sources): RSS {full:,.0f} MB "
          f"(interpreter+libs {base:,.0f} MB, + expected tags {after_model - base:,.0f} MB, "
          f"+ tag state {full - after_model:,.0f} MB)")
    start = time.perf_counter()
    ev = tracker.evaluate(t0 + 1)
    print(f"evaluation of {tracked:,} tags: {time.perf_counter() - start:.2f} s "
          f"(completeness {min(s.completeness for s in ev.sources.values()):.2f})")
    start = time.perf_counter()
    rows = tracker.flush()
    print(f"flush of every tag ({rows:,} rows) to SQLite: {time.perf_counter() - start:.2f} s, "
          f"state file {os.path.getsize(workdir / 'memory.db') / 2**20:,.0f} MB")
    reg = CollectorRegistry(auto_describe=False)
    reg.register(TrackerCollector(tracker))
    start = time.perf_counter()
    body = generate_latest(reg)
    print(f"/metrics scrape: {time.perf_counter() - start:.2f} s, {len(body) / 2**20:.1f} MB, "
          f"{len([x for x in body.splitlines() if not x.startswith(b'#')]):,} series")
    tracker.close()
    start = time.perf_counter()
    again = Tracker(ents, settings, workdir / "memory.db")
    print(f"restart (load {sum(len(s.tags) for s in again.state.sources.values()):,} tags from SQLite): "
          f"{time.perf_counter() - start:.2f} s; peak RSS {rss_mb():,.0f} MB")
    again.close()


MOSQUITTO_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages {inflight}
"""


def publish(host: str, port: int, n_ent: int, n_tags: int, per_batch: int, rounds: int) -> None:
    """Publisher process for the end-to-end measurement: every message QoS 1, at most 1,000 in flight."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ents = synth(n_ent, n_tags, Thresholds())
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    infos = [client.publish(topic("5101", b.gateway, b.source), b.encode(), qos=1)
             for b in batches(ents, per_batch, rounds, time.time())]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def bench_mqtt(per_batch: int, inflight: int, max_unacked: int, workdir: Path) -> None:
    import subprocess
    import sys

    from hazmon.testing.procs import free_port, stop, wait_port
    from hazmon.tracker.mqtt import BrokerConfig, MqttFeed

    n_ent, n_tags, rounds = 200, 55, 10
    port = free_port()
    run = f"{inflight}-{port}"
    conf = workdir / f"mosquitto-{run}.conf"
    conf.write_text(MOSQUITTO_CONF.format(port=port, inflight=inflight), encoding="utf-8")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.1", port)
        settings = TrackerSettings(max_unacked=max_unacked)
        tracker = Tracker(synth(n_ent, n_tags, settings.thresholds), settings, workdir / f"mqtt-{run}.db")
        feed = MqttFeed(tracker, BrokerConfig("127.0.0.1", port, f"bench-tracker-{run}"))
        feed.start()
        assert feed.subscribed.wait(10), "tracker did not subscribe"
        total = n_ent * n_tags * rounds
        pub = subprocess.Popen([sys.executable, __file__, "--publish", str(port), "--enterprises", str(n_ent),
                                "--tags", str(n_tags), "--batch", str(per_batch), "--rounds", str(rounds)])
        cpu0 = time.process_time()
        first = None
        while True:
            got = sum(s.accepted for s in tracker.state.sources.values())
            if got and first is None:
                first = time.perf_counter()
            if got >= total:
                break
            if pub.poll() not in (None, 0):
                raise RuntimeError("publisher failed")
            time.sleep(0.005)
        wall = time.perf_counter() - (first or time.perf_counter())
        cpu = time.process_time() - cpu0
        pub.wait(30)
        feed.stop()
        tracker.close()
        print(f"mqtt end to end (broker max_inflight {inflight}, tracker max_unacked {max_unacked}): "
              f"{total / wall:,.0f} samples/s wall, tracker process {cpu / total * 1e6:.1f} µs CPU/sample, "
              f"i.e. {total / cpu:,.0f} samples/s per core ({total:,} samples in {total // per_batch:,} QoS 1 "
              "messages; committed and acknowledged)")
    finally:
        stop(broker)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--enterprises", type=int, default=8000)
    p.add_argument("--tags", type=int, default=55, help="tags per enterprise")
    p.add_argument("--batch", type=int, default=50, help="samples per MQTT batch")
    p.add_argument("--no-mqtt", dest="mqtt", action="store_false",
                   help="skip the end-to-end measurement through Mosquitto")
    p.add_argument("--publish", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the end-to-end publisher
    p.add_argument("--rounds", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.publish:
        publish("127.0.0.1", args.publish, args.enterprises, args.tags, args.batch, args.rounds)
        return
    base = rss_mb()
    settings = TrackerSettings()
    ents = synth(args.enterprises, args.tags, settings.thresholds)
    gc.freeze()  # as hazmon-tracker's main does after loading the inventory and state
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench_memory(ents, args.batch, settings, work, base)
        bench_ingest(ents, args.batch)
        bench_receive(ents, args.batch, settings, work)
        if args.mqtt:
            bench_mqtt(args.batch, 20, 16, work)  # Mosquitto's default inflight, the tracker's default
            bench_mqtt(args.batch, 200, 128, work)


if __name__ == "__main__":
    main()
