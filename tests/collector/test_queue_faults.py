"""The queue under faults: a failing statement, a really full disk, a corrupt database.

What the collector does on a full disk (docs/wire.md, "Queue faults"): it keeps polling, counts
each tick it cannot write as `queue_error` (alerted), keeps and sends everything already queued,
and writes again by itself as soon as space returns. A corrupt database is moved aside and a new
queue (new epoch) is started.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from collector_harness import GATEWAY, base_config
from collector_sims import Broker, Receiver, RegisterMap, metric, scrape, start_modbus_tcp, stop_server, wait_for

from hazmon.collector.queue import CORRUPT_SUFFIX, DurableQueue, count_corrupt, open_queue
from hazmon.testing.disk import fill, tiny_disk


def samples(n: int, t0: float = 1000.0) -> list[tuple[str, float, float]]:
    return [(f"T{i}", t0 + i, float(i)) for i in range(n)]


def install_trigger(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


# ------------------------------------------------------------------ unit: transactions


def test_a_statement_failing_inside_ack_is_rolled_back_and_later_writes_work(tmp_path):
    """The failure as it was found: a statement failing inside ack left its transaction open, and
    every later put failed ("cannot start a transaction within a transaction") until a restart."""
    path = tmp_path / "q.db"
    q = DurableQueue(path, max_samples=1000)
    for _ in range(3):
        q.put("dcs", samples(2))
    # A real failing statement: SQLite aborts the DELETE of seq 2.
    install_trigger(path, "CREATE TRIGGER refuse BEFORE DELETE ON batches WHEN old.seq = 2 "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    with pytest.raises(sqlite3.DatabaseError, match="refused by the test"):
        q.ack([1, 2, 3])
    assert q.put("dcs", samples(1)).seq == 4, "a later write works"
    assert [r.seq for r in q.fetch(0, None, 10)] == [1, 2, 3, 4], "the failed ack deleted nothing (all or nothing)"
    assert (q.depth_batches, q.depth_samples) == (4, 7)
    q.close()


def test_a_statement_failing_inside_put_is_rolled_back_and_the_seq_is_not_used(tmp_path):
    path = tmp_path / "q.db"
    q = DurableQueue(path, max_samples=1000)
    q.put("dcs", samples(2))
    install_trigger(path, "CREATE TRIGGER refuse BEFORE INSERT ON batches WHEN new.seq = 2 "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    with pytest.raises(sqlite3.DatabaseError, match="refused by the test"):
        q.put("gds", samples(3))
    assert (q.depth_batches, q.depth_samples, q.last_seq, q.enqueued_samples) == (1, 2, 1, 2)
    install_trigger(path, "DROP TRIGGER refuse")
    assert q.put("gds", samples(3)).seq == 2, "no gap: the failed put's seq is given again"
    q.close()


def test_a_failing_delete_of_committed_ranges_deletes_nothing(tmp_path):
    path = tmp_path / "q.db"
    q = DurableQueue(path, max_samples=1000)
    for _ in range(6):
        q.put("dcs", samples(1))
    install_trigger(path, "CREATE TRIGGER refuse BEFORE DELETE ON batches WHEN old.seq = 5 "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    with pytest.raises(sqlite3.DatabaseError):
        q.delete_committed([(1, 2), (4, 5)], upto=6)
    assert [r.seq for r in q.fetch(0, None, 10)] == [1, 2, 3, 4, 5, 6]
    install_trigger(path, "DROP TRIGGER refuse")
    deleted = q.delete_committed([(1, 2), (4, 5), (6, 10**9)], upto=5)
    assert (deleted.seqs, deleted.samples) == ((1, 2, 4, 5), 4)
    assert [r.seq for r in q.fetch(0, None, 10)] == [3, 6], "nothing above upto is deleted"
    assert (q.depth_batches, q.depth_samples) == (2, 2)
    q.close()


# ------------------------------------------------------------------ unit: a corrupt database


def _valid_queue(path: Path, batches: int = 300) -> int:
    q = DurableQueue(path, max_samples=10**6)
    for i in range(batches):
        q.put("dcs", samples(20, 1000.0 + i))
    epoch = q.epoch
    q.close()
    return epoch


@pytest.mark.parametrize("damage", ["garbage", "truncated", "garbled_page"])
def test_a_corrupt_queue_is_moved_aside_and_a_new_epoch_starts(tmp_path, damage):
    path = tmp_path / "queue.db"
    old_epoch = _valid_queue(path)
    data = path.read_bytes()
    assert len(data) > 16 * 4096
    if damage == "garbage":
        bad = b"this is not an SQLite database " * 4000
    elif damage == "truncated":
        bad = data[: len(data) // 2]
    else:  # a page in the middle overwritten, as a failing flash disk does
        bad = data[:8 * 4096] + os.urandom(4096) + data[9 * 4096:]
    path.write_bytes(bad)
    q, aside = open_queue(path, 10**6, now=1_800_000_000.0)
    try:
        assert aside is not None and aside.name == f"queue.db{CORRUPT_SUFFIX}20270115T080000Z"
        assert aside.read_bytes() == bad, "the corrupt file is kept as it was, for an operator"
        assert q.epoch != old_epoch and (q.depth_batches, q.last_seq) == (0, 0)
        assert q.put("dcs", samples(1)).seq == 1
        assert count_corrupt(path) == q.corrupt_files() == 1
    finally:
        q.close()


def test_a_sound_queue_is_not_moved_aside(tmp_path):
    path = tmp_path / "queue.db"
    epoch = _valid_queue(path, 10)
    q, aside = open_queue(path, 10**6)
    assert aside is None and q.epoch == epoch and q.depth_batches == 10
    q.close()


def test_an_unopenable_queue_that_is_not_corrupt_is_not_moved_aside(tmp_path):
    """Moving aside is for damage SQLite reports; a directory in the way is an error to show."""
    path = tmp_path / "queue.db"
    path.mkdir()
    with pytest.raises(sqlite3.OperationalError):
        open_queue(path, 10**6)
    assert path.is_dir() and count_corrupt(path) == 0


# ------------------------------------------------------------------ integration


def counter_source(port: int, interval: float) -> dict:
    return {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
            "tags": [{"code": "CNT", "register": 0, "type": "uint32", "interval": interval},
                     {"code": "LT-101", "register": 2, "type": "float32", "interval": interval}]}


@pytest.mark.integration
def test_a_garbage_queue_file_does_not_stop_the_collector(tmp_path, servers, run_collector):
    server, port = start_modbus_tcp(servers, RegisterMap([0, 0, 0x4148, 0], counter_at=0))
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    bad = b"\x00garbage, not a queue\xff" * 2000
    (tmp_path / "queue.db").write_bytes(bad)
    try:
        running = run_collector(base_config(tmp_path, broker.port, [counter_source(port, 0.1)]))
        c = running.collector
        wait_for(lambda: len(receiver.seqs(GATEWAY)) >= 5, 30, "publishing under the new queue")
        assert {b.epoch for b in receiver.batches.values()} == {c.queue.epoch}
        kept = list(tmp_path.glob(f"queue.db{CORRUPT_SUFFIX}*"))
        assert len(kept) == 1 and kept[0].read_bytes() == bad
        text = scrape(c.metrics_port)
        assert metric(text, "hazmon_collector_queue_corrupt_files") == 1
        assert metric(text, "hazmon_collector_queue_moved_aside_total") == 1
        running.stop()
    finally:
        receiver.close()
        stop_server(servers, server)
        broker.stop()


@pytest.mark.integration
def test_a_full_disk_drops_new_ticks_counted_keeps_the_queue_and_recovers_by_itself(tmp_path, servers,
                                                                                   run_collector):
    regs = RegisterMap([0, 0, 0x4148, 0], counter_at=0)
    server, port = start_modbus_tcp(servers, regs)
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    try:
        with tiny_disk(tmp_path / "disk", "4m") as disk:
            cfg = base_config(tmp_path, broker.port, [counter_source(port, 0.02)])
            cfg = cfg.model_copy(update={"queue": cfg.queue.model_copy(update={"path": disk / "queue.db"})})
            running = run_collector(cfg)
            c = running.collector
            wait_for(lambda: c.stats.uplink.batches_published >= 20, 30, "delivery before the disk fills")

            filler = fill(disk)
            dropped = c.stats.queue.dropped
            wait_for(lambda: dropped["queue_error"] >= 20, 60, "writes to fail on the full disk")
            polls = c.stats.sources["dcs"].polls
            wait_for(lambda: c.stats.sources["dcs"].polls > polls + 10, 20, "polling to go on")
            assert c.stats.sources["dcs"].up and running.thread.is_alive()
            text = scrape(c.metrics_port)
            assert metric(text, "hazmon_collector_samples_dropped_total", 'reason="queue_error"') >= 20

            filler.unlink()  # space returns
            queued, errors = c.stats.queue.samples_queued, dropped["queue_error"]
            wait_for(lambda: c.stats.queue.samples_queued > queued + 40, 30, "writes to work again, unaided")
            time.sleep(0.5)
            errors_after = dropped["queue_error"]
            time.sleep(1)
            assert dropped["queue_error"] == errors_after, "no write fails once there is space"
            assert errors_after >= errors
            upto = c.queue.last_seq
            wait_for(lambda: not c.queue.fetch(0, upto, 1), 60, "everything queued to be confirmed")
            running.stop()

        # Nothing already queued was lost: every seq arrived; the only samples missing are the
        # ones counted as queue_error (two tags a tick), and nothing else.
        last_seq = max(receiver.seqs(GATEWAY))
        assert receiver.seqs(GATEWAY) == set(range(1, last_seq + 1))
        values = sorted(int(s.value) for _src, s in receiver.samples() if s.tag == "CNT")
        assert len(values) == len(set(values))
        assert len(values) + dropped["queue_error"] // 2 == regs.reads
        assert dropped["queue_full"] == 0 and not receiver.errors
    finally:
        receiver.close()
        stop_server(servers, server)
        broker.stop()
