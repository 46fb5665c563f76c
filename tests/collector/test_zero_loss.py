"""Acceptance 2: zero loss, counted at both ends.

The slave's counter register is incremented by the server on every read, so the server knows how
many samples it produced and each sample carries its own number. The receiver dedups by (gw, seq).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from collector_harness import GATEWAY, base_config
from collector_sims import (
    Broker,
    LineProxy,
    Receiver,
    RegisterMap,
    env_without_proxy,
    start_modbus_tcp,
    stop_server,
    wait_for,
)

from hazmon.testing.procs import stop

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 120.0  # the acceptance criterion: really two minutes


def counter_source(port: int, interval: float) -> dict:
    return {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port, "slave_id": 1,
            "tags": [{"code": "CNT", "register": 0, "type": "uint32", "interval": interval},
                     {"code": "LT-101", "register": 2, "type": "float32", "interval": interval}]}


def counter_values(receiver: Receiver) -> list[int]:
    return sorted(int(s.value) for _src, s in receiver.samples() if s.tag == "CNT")


def test_broker_down_two_minutes_loses_nothing(tmp_path, servers, run_collector):
    regs = RegisterMap([0, 0, 0x4148, 0, 0, 0], counter_at=0)  # LT-101 = 12.5
    server, port = start_modbus_tcp(servers, regs)
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    try:
        # ~2,400 batches of ~150 bytes wait after the outage; at 30 kB/s their replay takes ~12 s,
        # long enough to see live data overtake it.
        cfg = base_config(tmp_path, broker.port, [counter_source(port, 0.1)], replay_bytes_per_second=30_000)
        running = run_collector(cfg)
        c = running.collector
        wait_for(lambda: len(counter_values(receiver)) >= 10, 20, "live samples before the outage")

        broker.stop()
        time.sleep(OUTAGE_SECONDS)
        queued_in_outage = c.queue.depth_samples
        assert queued_in_outage > 2 * OUTAGE_SECONDS * 10 * 0.8, "polling went on and the queue kept it"
        assert c.stats.uplink.connected is False
        backlog_upto = c.queue.last_seq  # every batch up to here was queued while the broker was away
        broker.start()
        # Freshness recovers at once: live data arrives while the backlog is still replaying.
        t_back = time.time()
        wait_for(lambda: any(s.ts > t_back for _src, s in receiver.samples()), 30, "fresh data after restart")
        assert c.queue.depth_samples > queued_in_outage / 2, "live data went out before most of the backlog"
        # Drained = every backlog batch acknowledged. Not "queue empty": live batches keep arriving
        # at 10 Hz, so an empty queue is only ever seen by luck between a put and its PUBACK.
        wait_for(lambda: not c.queue.fetch(0, backlog_upto, 1), 90,
                 f"the backlog (seq <= {backlog_upto}) to drain")
        running.stop()  # clean stop: the last tick reaches the queue and the queue is flushed
        assert c.queue.depth_batches == 0

        produced = regs.reads  # every read the slave served = every CNT sample produced
        last_seq = c.stats.queue.samples_queued and sqlite3.connect(cfg.queue.path).execute(
            "SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
        receiver.wait(lambda: receiver.seqs(GATEWAY) == set(range(1, last_seq + 1)), 10, "every seq")
        assert counter_values(receiver) == list(range(1, produced + 1))
        assert c.stats.uplink.replayed_batches > 0
        assert c.stats.queue.dropped["queue_full"] == 0
        assert not receiver.errors
    finally:
        receiver.close()
        stop_server(servers, server)
        broker.stop()


def test_sigkill_mid_publish_then_restart_loses_nothing(tmp_path, servers):
    regs = RegisterMap([0, 0, 0x4148, 0, 0, 0], counter_at=0)
    server, port = start_modbus_tcp(servers, regs)
    broker = Broker(tmp_path)
    broker.start()
    line = LineProxy(broker.port)  # the collector reaches the broker through this "line"
    receiver = Receiver(broker.port)
    # A real process reads this machine's clock, which may not be synchronised: do not wait for it.
    cfg = base_config(tmp_path, line.port, [counter_source(port, 0.02)], clock={"sync_wait": 0},
                      replay_bytes_per_second=20_000)
    conf = tmp_path / "collector.yml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True, exclude_none=True)))
    cmd = [sys.executable, "-m", "hazmon.collector.main", "--config", str(conf), "--log-level", "WARNING"]
    log = (tmp_path / "collector.log").open("w")
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        p = subprocess.Popen(cmd, stderr=log, env=env_without_proxy())
        procs.append(p)
        return p

    try:
        proc = start()
        wait_for(lambda: len(receiver.seqs(GATEWAY)) >= 20, 30, "publishing to start")
        db = sqlite3.connect(cfg.queue.path)
        # The line swallows everything: PUBLISHes leave the gateway but are never acknowledged.
        line.blackhole.set()
        time.sleep(1.5)
        in_flight = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
        assert in_flight >= 20, "the kill must land while published batches wait for their PUBACK"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        kills = 1
        # Everything the killed process committed, the blackholed in-flight batches included.
        left_upto = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
        line.blackhole.clear()

        proc = start()
        # The restarted collector must get every batch the killed one left behind acknowledged.
        # Not "the table is empty": its own live batches arrive every 20 ms and each waits for its
        # PUBACK, so an empty table is seen only by luck (and never on a loaded machine). The clean
        # stop below flushes the live ones, and the table must then be empty.
        left = "SELECT COUNT(*) FROM batches WHERE seq <= ?"
        wait_for(lambda: db.execute(left, (left_upto,)).fetchone()[0] == 0, 60,
                 f"the restarted collector to deliver the batches it found (seq <= {left_upto})")
        wait_for(lambda: max(receiver.seqs(GATEWAY)) > left_upto, 30, "the restarted collector's live data")
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "SIGTERM is a clean stop"

        last_seq = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
        enqueued = db.execute("SELECT value FROM meta WHERE key='enqueued_samples'").fetchone()[0]
        with contextlib.suppress(AssertionError):
            receiver.wait(lambda: receiver.seqs(GATEWAY) == set(range(1, last_seq + 1)), 10, "every seq")
        assert sorted(set(range(1, last_seq + 1)) - receiver.seqs(GATEWAY)) == []
        assert db.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 0
        samples = receiver.samples()
        assert len(samples) == enqueued, "every committed sample arrived exactly once after dedup"
        # Counted at the source: every read the slave served arrived, except at most the one read
        # per kill whose answer the killed process had received but not yet committed.
        values = counter_values(receiver)
        assert len(values) == len(set(values))
        missing = set(range(1, regs.reads + 1)) - set(values)
        assert len(missing) <= kills, f"samples lost: {sorted(missing)[:20]}"
        assert not receiver.errors
    finally:
        for p in procs:
            stop(p)
        log.close()
        receiver.close()
        line.close()
        stop_server(servers, server)
        broker.stop()
