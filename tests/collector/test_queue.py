"""Unit: the durable queue (seq persistence, cap policy, acks), the wire envelope, metrics, clock."""

from __future__ import annotations

import subprocess
import time

from hazmon import wire
from hazmon.collector.backoff import backoff_delays
from hazmon.collector.clock import ClockState, read_clock
from hazmon.collector.config import BackoffConfig
from hazmon.collector.metrics import CollectorMetrics, make_registry
from hazmon.collector.queue import DurableQueue, encode_samples, finite
from hazmon.collector.stats import SourceStats, Stats
from hazmon.collector.wireformat import message


def samples(n: int, t0: float = 1000.0) -> list[tuple[str, float, float]]:
    return [(f"T{i}", t0 + i, float(i)) for i in range(n)]


def test_seq_is_strictly_increasing_and_survives_reopen(tmp_path):
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    seqs = [q.put("dcs", samples(3)).seq for _ in range(3)]
    assert seqs == [1, 2, 3]
    q.ack([1, 2, 3])
    assert (q.depth_samples, q.depth_batches) == (0, 0)
    q.close()
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    assert q.put("dcs", samples(1)).seq == 4, "an empty queue must not restart the seq"
    assert q.enqueued_samples == 10
    q.close()


def test_rows_survive_reopen_until_acked(tmp_path):
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    q.put("dcs", samples(2))
    q.put("gds", samples(5))
    q.close()
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    assert (q.depth_samples, q.depth_batches) == (7, 2)
    rows = q.fetch(0, None, 10)
    assert [(r.seq, r.source, r.n) for r in rows] == [(1, "dcs", 2), (2, "gds", 5)]
    assert [r.seq for r in q.fetch(1, 1, 10)] == []
    assert q.ack([2, 99]) == 5, "an unknown seq is ignored"
    assert q.oldest_ts() == 1000.0
    q.close()


def test_full_queue_drops_oldest_and_counts(tmp_path):
    q = DurableQueue(tmp_path / "q.db", max_samples=10)
    q.put("dcs", samples(4))
    q.put("dcs", samples(4))
    put = q.put("dcs", samples(4))  # 12 > 10: the oldest batch goes
    assert (put.seq, put.dropped) == (3, 4)
    assert (q.depth_samples, q.depth_batches) == (8, 2)
    assert [r.seq for r in q.fetch(0, None, 10)] == [2, 3]
    q.close()


def test_envelope_decodes_with_wire():
    s = [("LT-101", 1764323000.11, 12.37), ("温度", 1764323000.12, -1e-9)]
    payload = message("91510100MALABE0001", 1042, "dcs", encode_samples(s), 1764323000.25)
    b = wire.decode(payload)
    assert b == wire.Batch("91510100MALABE0001", 1042, "dcs",
                           tuple(wire.Sample(*x) for x in s), 1764323000.25)
    assert wire.decode(b.encode()) == b


def test_non_finite_values_are_split_off():
    good, bad = finite([("a", 1.0, float("nan")), ("b", 1.0, 2.0), ("c", 1.0, float("inf"))])
    assert good == [("b", 1.0, 2.0)] and bad == 2


def test_backoff_grows_to_the_cap_with_jitter():
    import random

    delays = backoff_delays(BackoffConfig(initial=1, maximum=8, jitter=0.2), random.Random(1))
    got = [next(delays) for _ in range(6)]
    for d, nominal in zip(got, [1, 2, 4, 8, 8, 8], strict=True):
        assert nominal * 0.8 <= d <= nominal * 1.2
    assert len(set(got[3:])) == 3, "jitter: equal nominal delays differ"


def test_clock_reads_the_kernel():
    state = read_clock()
    assert state is not None and isinstance(state.synced, bool)
    assert state.max_error_seconds >= 0


def test_metrics_pass_promtool_with_every_family(tmp_path):
    q = DurableQueue(tmp_path / "q.db", max_samples=100)
    q.put("dcs", samples(3, time.time() - 5))
    stats = Stats({"dcs": SourceStats("dcs", "modbus_tcp", up=True, polls=3, poll_seconds_sum=0.1,
                                      last_success=time.time(), samples_read=9)})
    stats.sources["dcs"].errors["timeout"] += 2
    stats.queue.dropped["queue_full"] += 7
    stats.uplink.last_ack = time.time()
    clock = ClockState(True, 0.01, 0.001, -0.0002)
    registry = make_registry(CollectorMetrics("91510100MALABE0001", stats, q, lambda: clock))
    from prometheus_client import generate_latest

    out = generate_latest(registry).decode()
    check = subprocess.run(["promtool", "check", "metrics"], input=out, capture_output=True, text=True,
                           timeout=30)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr
    assert 'hazmon_collector_source_errors_total{kind="timeout",source="dcs"} 2.0' in out
    assert 'hazmon_collector_samples_dropped_total{reason="queue_full"} 7.0' in out
    assert "hazmon_collector_queue_samples 3.0" in out
    age = float(out.split("\nhazmon_collector_queue_oldest_sample_age_seconds ")[1].split()[0])
    assert 4 < age < 60
    assert "hazmon_collector_clock_synced 1.0" in out and "hazmon_collector_clock_offset_seconds -0.0002" in out
    q.close()
