"""Unit: the durable queue (seq persistence, cap policy, acks), the wire envelope, metrics, clock."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import pytest

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


def test_queue_epoch_is_made_once_with_the_database(tmp_path):
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    epoch = q.epoch
    assert 0 < epoch <= wire.MAX_EPOCH
    q.put("dcs", samples(1))
    q.close()
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    assert q.epoch == epoch, "reopening keeps the epoch"
    q.close()
    for f in tmp_path.glob("q.db*"):  # a re-imaged gateway: the queue database is gone
        f.unlink()
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    assert q.epoch != epoch
    assert q.put("dcs", samples(1)).seq == 1  # why the epoch is needed: seqs start again
    q.close()


def test_a_queue_from_before_epochs_gets_one_and_keeps_its_rows(tmp_path):
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    q.put("dcs", samples(2))
    q.put("gds", samples(3))
    q.close()
    with sqlite3.connect(tmp_path / "q.db") as db:  # as a collector from before epochs left it
        db.execute("DELETE FROM meta WHERE key = 'epoch'")
    db.close()
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    epoch = q.epoch
    assert epoch > 0
    assert [(r.seq, r.n) for r in q.fetch(0, None, 10)] == [(1, 2), (2, 3)]
    assert q.put("dcs", samples(1)).seq == 3
    q.close()
    q = DurableQueue(tmp_path / "q.db", max_samples=1000)
    assert q.epoch == epoch
    q.close()


def test_envelope_decodes_with_wire():
    s = [("LT-101", 1764323000.11, 12.37), ("温度", 1764323000.12, -1e-9)]
    samples_json = encode_samples(s)
    sample_tuple = tuple(wire.Sample(*x) for x in s)
    for epoch in (0, 1, 6120598016474632931, wire.MAX_EPOCH):
        payload = message("91510100MALABE0001", 1042, "dcs", samples_json, 1764323000.25, epoch)
        assert (b'"ep":' in payload) == (epoch != 0), "epoch 0 leaves ep out, as from an older collector"
        b = wire.decode(payload)
        assert b == wire.Batch("91510100MALABE0001", 1042, "dcs", sample_tuple, 1764323000.25, epoch)
        assert b.epoch == epoch
        assert wire.decode(b.encode()) == b
        assert b.encode() == payload


def test_without_ep_a_batch_is_epoch_0():
    payload = b'{"v":1,"gw":"G","seq":3,"src":"dcs","sent":1.5,"samples":[{"t":"T","ts":1.0,"v":2.0}]}'
    assert wire.decode(payload).epoch == 0


def test_unknown_fields_are_ignored():
    # What lets `ep` be optional within v1: a receiver reads only the fields it knows.
    payload = b'{"v":1,"gw":"G","seq":3,"ep":7,"zz":[1],"src":"dcs","samples":[]}'
    assert wire.decode(payload) == wire.Batch("G", 3, "dcs", (), 0.0, 7)


@pytest.mark.parametrize("ep", ["-1", "1.5", "1.0", '"7"', "true", "null", "[7]", str(2**63)])
def test_a_bad_ep_is_refused(ep):
    payload = f'{{"v":1,"gw":"G","seq":3,"ep":{ep},"src":"dcs","samples":[]}}'.encode()
    with pytest.raises(wire.WireError, match="ep"):
        wire.decode(payload)


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
    stats.uplink.last_committed = time.time() - 1
    stats.uplink.committed_ignored["other_epoch"] += 2
    stats.uplink.unconfirmed = 4
    stats.clock.started_unsynced = True
    stats.clock.sync_wait_seconds = 60.0
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
    assert 'hazmon_collector_committed_ignored_total{reason="other_epoch"} 2.0' in out
    assert 'hazmon_collector_committed_ignored_total{reason="malformed"} 0.0' in out
    assert "hazmon_collector_queue_unconfirmed_batches 4.0" in out
    assert "hazmon_collector_clock_started_unsynced 1.0" in out and "hazmon_collector_clock_readable 1.0" in out
    assert "hazmon_collector_queue_corrupt_files 0.0" in out
    assert "hazmon_collector_last_committed_timestamp_seconds" in out
    q.close()
