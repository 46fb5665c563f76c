"""The tracker survives its own storage: a locked state file, a full disk.

Real faults: a second SQLite connection holding the write lock ("database is locked"), and a
real full filesystem (a tiny tmpfs mounted under the test's temp dir). A failed commit is rolled
back and tried again with backoff; its messages are not acknowledged before a commit holds them
(Mosquitto stops sending past 20 unacknowledged messages, and the acks seen by paho are counted);
/healthz and /metrics say so (503 naming the loop) and recover (200) once the fault is gone.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazmon.testing.disk import fill, tiny_disk
from hazmon.testing.procs import Mosquitto
from hazmon.tracker.app import AppConfig, TrackerApp
from hazmon.tracker.expected import load_expectations
from hazmon.tracker.mqtt import BrokerConfig
from hazmon.tracker.service import Housekeeper, Tracker
from hazmon.tracker.settings import TrackerSettings
from hazmon.wire import Batch, Sample, topic
from tracker.helpers import GOOD, N, Publisher, get, metric, wait_for
from tracker.inventory import LAB_CODE

DCS_TOPIC = topic("5101", LAB_CODE, "dcs")
BUSY_TIMEOUT = 5.0  # how long a commit waits for another's lock by default (SQLite's default too)


def fast() -> TrackerSettings:
    """Fast loops and small bounds, so that a fault shows within a second or two."""
    return TrackerSettings(flush_every_seconds=0.05, evaluate_every_seconds=0.2, flush_retry_initial_seconds=0.1,
                           flush_retry_max_seconds=0.5, state_busy_timeout_seconds=0.1, health_stale_min_seconds=1.0)


def committed(state: Path) -> tuple[int, str | None]:
    """(samples accepted, the lab gateway's seen seqs) as committed in the state file."""
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT accepted FROM sources WHERE enterprise = ? AND source = 'dcs'", (LAB_CODE,)).fetchone()
        seqs = db.execute("SELECT seqs FROM gateways WHERE gateway = ?", (LAB_CODE,)).fetchone()
    finally:
        db.close()
    return (int(row[0]) if row else 0), (seqs[0] if seqs else None)


def health(port: int) -> tuple[int, str]:
    status, body = get(port, "/healthz")
    return status, body.decode()


@contextlib.contextmanager
def running(inventory: Path, state: Path, broker: Mosquitto, settings: TrackerSettings | None = None) -> Iterator[
        tuple[TrackerApp, list[tuple[int, int]]]]:
    """The tracker in-process on a real broker; the acks it sends to paho are recorded on the way."""
    config = AppConfig(inventory, state, BrokerConfig(broker.host, broker.port, "tracker-storage"),
                       "127.0.0.1", 0, settings or fast())
    app = TrackerApp(config)
    acked: list[tuple[int, int]] = []
    to_paho = app.tracker.acker
    assert to_paho is not None

    def recording(acks: list[tuple[int, int]]) -> None:
        acked.extend(acks)
        to_paho(acks)

    app.tracker.acker = recording
    app.start()
    try:
        assert app.feed.subscribed.wait(10)
        yield app, acked
    finally:
        app.stop()


def accepted_in_memory(app: TrackerApp) -> int:
    return app.tracker.state.sources[(LAB_CODE, "dcs")].accepted


def fault_then_recovery(app: TrackerApp, acked: list, publisher: Publisher, state: Path,
                        fault: contextlib.AbstractContextManager, error: str) -> None:
    """Batch 1 committed; under the fault 30 more are published; then the fault is removed."""
    port = app.http.port
    t0 = time.time() - 600
    publisher.batch(LAB_CODE, 1, GOOD, t0)
    wait_for(lambda: committed(state)[0] == N and len(acked) == 1, what="batch 1 committed and acked")
    wait_for(lambda: health(port)[0] == 200, what="/healthz 200")
    with fault:
        faulty_since = time.time()
        for seq in range(2, 32):
            publisher.batch(LAB_CODE, seq, GOOD | {"LT-101": seq / 2}, t0 + seq)
        # Mosquitto sends at most 20 unacknowledged messages to one client: the tracker holds 20.
        wait_for(lambda: accepted_in_memory(app) == 21 * N, what="20 batches in memory")
        wait_for(lambda: health(port)[0] == 503, what="/healthz 503")
        body = health(port)[1]
        assert body.startswith("unhealthy: flush") and error in body, body
        assert "mqtt: ok" in body, body
        assert metric(port, "hazmon_tracker_loop_up", loop="flush") == 0
        # The evaluation goes on meanwhile (its own thread; the state it reads is in memory).
        wait_for(lambda: (metric(port, "hazmon_tracker_loop_last_success_timestamp_seconds", loop="evaluation")
                          or 0) > faulty_since, what="an evaluation during the fault")
        assert (metric(port, "hazmon_tracker_flush_failures_total") or 0) >= 1
        assert metric(port, "hazmon_tracker_unacked_messages") == 20
        # Nothing acknowledged: the broker, which would have sent the next ones, held them back.
        assert len(acked) == 1 and accepted_in_memory(app) == 21 * N
        assert committed(state)[0] == N
    wait_for(lambda: health(port)[0] == 200, timeout=20, what="/healthz 200 after the fault")
    wait_for(lambda: committed(state) == (31 * N, "[[1],[31],0]") and len(acked) == 31, timeout=20,
             what="every batch committed and acknowledged")
    assert metric(port, "hazmon_tracker_samples_duplicate_total", enterprise=LAB_CODE, source="dcs") == 0
    assert metric(port, "hazmon_tracker_mqtt_connected") == 1
    assert metric(port, "hazmon_tracker_unacked_messages") == 0


@contextlib.contextmanager
def write_lock(state: Path) -> Iterator[None]:
    """Another process's connection holding the state file's write lock."""
    other = sqlite3.connect(state, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.integration
def test_a_locked_state_file(inventory: Path, tmp_path: Path, broker: Mosquitto, publisher: Publisher) -> None:
    state = tmp_path / "tracker.db"
    with running(inventory, state, broker) as (app, acked):
        fault_then_recovery(app, acked, publisher, state, write_lock(state), "database is locked")


@contextlib.contextmanager
def disk_full(disk: Path) -> Iterator[None]:
    """Fill the filesystem to the last byte; free it on the way out."""
    filler = fill(disk)
    try:
        yield
    finally:
        filler.unlink()


@pytest.mark.integration
def test_a_full_disk(inventory: Path, tmp_path: Path, broker: Mosquitto, publisher: Publisher) -> None:
    with tiny_disk(tmp_path / "disk", "1m") as disk:
        state = disk / "tracker.db"
        with running(inventory, state, broker) as (app, acked):
            fault_then_recovery(app, acked, publisher, state, disk_full(disk), "full")


def test_a_locked_state_file_does_not_stop_the_housekeeping(inventory: Path, tmp_path: Path) -> None:
    """Default settings: the first commit fails after the 5 s busy timeout; the next one succeeds."""
    settings = TrackerSettings()
    state = tmp_path / "tracker.db"
    t = Tracker(load_expectations(inventory, settings.thresholds), settings, state)
    acked: list[list[tuple[int, int]]] = []
    t.acker = acked.append
    keeper = Housekeeper(t)
    keeper.start()
    try:
        with write_lock(state):
            t.receive(DCS_TOPIC, Batch(LAB_CODE, 1, "dcs", (Sample("LT-101", time.time(), 3.0),)).encode(), 9, 1)
            # Held past the busy timeout of the first flush attempt, which starts within 0.2 s.
            time.sleep(BUSY_TIMEOUT + 2)
            assert acked == []
        wait_for(lambda: acked == [[(9, 1)]], timeout=30, what="the commit after the lock, then the ack")
        assert committed(state)[0] == 1
    finally:
        keeper.stop()
        t.close()
    assert settings.state_busy_timeout_seconds == BUSY_TIMEOUT


def test_a_loop_goes_on_after_an_unexpected_error(
        inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = fast()
    t = Tracker(load_expectations(inventory, settings.thresholds), settings, tmp_path / "tracker.db")
    calls = []

    def flaky(force: bool = False) -> int:
        calls.append(force)
        if len(calls) == 1:
            raise RuntimeError("a bug in flush")
        return 0

    monkeypatch.setattr(t, "flush", flaky)
    keeper = Housekeeper(t)
    with caplog.at_level(logging.ERROR, logger="hazmon.tracker.service"):
        keeper.start()
        try:
            wait_for(lambda: len(calls) >= 3, what="the flush loop going on")
        finally:
            keeper.stop()
    assert "RuntimeError: a bug in flush" in caplog.text and "Traceback" in caplog.text
    assert t.health.errors == {"flush": 1}
    monkeypatch.undo()
    t.close()
