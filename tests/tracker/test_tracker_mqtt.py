"""Integration: the tracker against a real Mosquitto, real paho publishers, real HTTP and promtool."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazmon.testing.procs import Mosquitto, stop
from hazmon.tracker.app import AppConfig, TrackerApp
from hazmon.tracker.mqtt import BrokerConfig
from hazmon.tracker.settings import Thresholds, TrackerSettings
from tracker.helpers import (
    GOOD,
    TOKEN,
    N,
    Publisher,
    TrackerProcess,
    get,
    get_json,
    metric,
    source_counts,
    wait_for,
)
from tracker.inventory import LAB_CODE, SHUTDOWN_CODE

pytestmark = pytest.mark.integration


@pytest.fixture
def tracker_proc(inventory: Path, tmp_path: Path, broker: Mosquitto) -> Iterator[TrackerProcess]:
    tp = TrackerProcess(inventory, tmp_path / "state" / "tracker.db", broker, tmp_path / "tracker.log")
    yield tp
    if tp.proc is not None and tp.proc.poll() is None:
        stop(tp.proc)


def test_duplicates_counted_once_and_state_survives_restart(
        tracker_proc: TrackerProcess, publisher: Publisher) -> None:
    t0 = time.time() - 60  # samples up to t0 + 13: none ahead of the tracker's clock
    tracker_proc.start()
    # The session must exist before the first publish so that the broker queues for it.
    publisher.batch(LAB_CODE, 1, GOOD, t0)
    wait_for(lambda: source_counts(tracker_proc.port)[0] == N, what="first batch")
    for seq in range(2, 12):
        publisher.batch(LAB_CODE, seq, {"LT-101": float(seq)}, t0 + seq)
    for seq in range(1, 12):  # every batch again, as after a collector outage: all duplicates
        publisher.batch(LAB_CODE, seq, {"LT-101": 99.0}, t0 + seq)
    port = tracker_proc.port
    # Replays carry one sample each: 11 duplicate samples.
    wait_for(lambda: source_counts(port) == (N + 10, 11), what="11 batches and 11 replays")

    tracker_proc.stop()
    # While the tracker is down: replays of 5..11 (duplicates) and two new batches, queued by the broker.
    for seq in range(5, 12):
        publisher.batch(LAB_CODE, seq, {"LT-101": 99.0}, t0 + seq)
    publisher.batch(LAB_CODE, 12, {"LT-101": 12.0}, t0 + 12)
    publisher.batch(LAB_CODE, 13, {"LT-101": 13.0, "PT-101": 0.7}, t0 + 13)
    tracker_proc.start()
    wait_for(lambda: source_counts(port) == (N + 10 + 3, 11 + 7), what="the queued messages")

    tags = {t["tag"]: t for t in get_json(port, f"/api/v1/tags?enterprise={LAB_CODE}")["tags"]}
    assert tags["LT-101"]["value"] == 13.0 and tags["LT-101"]["ts"] == pytest.approx(t0 + 13)
    assert tags["PT-101"]["value"] == 0.7
    assert tags["TT-201"]["value"] == 200.0  # only in batch 1: remembered across the restart
    assert metric(port, "hazmon_tracker_gateway_missing_batches", gateway=LAB_CODE) == 0
    # The evaluation loop runs on its own timer (--evaluate-every 0.2).
    first = metric(port, "hazmon_tracker_last_evaluation_timestamp_seconds") or 0
    wait_for(lambda: (metric(port, "hazmon_tracker_last_evaluation_timestamp_seconds") or 0) > first,
             what="the next timed evaluation")


def test_a_killed_tracker_loses_nothing_and_counts_nothing_twice(
        tracker_proc: TrackerProcess, publisher: Publisher, tmp_path: Path) -> None:
    """Acknowledged only after commit: after SIGKILL the broker resends what was not committed."""
    # First run: commit (and so acknowledge) only every 60 s, so that the kill finds work in memory.
    lazy = tmp_path / "lazy.yml"
    lazy.write_text("flush_every_seconds: 60\nmax_unacked: 10000\n", encoding="utf-8")
    t0 = time.time()
    tracker_proc.start(settings=lazy)
    port = tracker_proc.port
    batches = 300
    for seq in range(1, batches + 1):
        publisher.batch(LAB_CODE, seq, GOOD | {"LT-101": seq % 20}, t0 + seq * 0.01)
    # Mosquitto sends at most 20 unacknowledged messages to one client: the tracker holds them.
    wait_for(lambda: (source_counts(port)[0] or 0) >= 20 * N, what="a first window of messages")
    in_memory = source_counts(port)[0]
    tracker_proc.kill()  # without a chance to flush
    with sqlite3.connect(tracker_proc.state) as db:
        committed = db.execute("SELECT coalesce(sum(accepted), 0) FROM sources").fetchone()[0]
    assert committed < in_memory  # so the broker must resend what the tracker had taken
    tracker_proc.start()
    wait_for(lambda: (source_counts(port)[0] or 0) >= batches * N, what="every batch")
    time.sleep(0.5)  # anything counted twice would show up now
    accepted, _dups = source_counts(port)
    assert accepted == batches * N
    assert metric(port, "hazmon_tracker_gateway_missing_batches", gateway=LAB_CODE) == 0


@pytest.fixture
def app(inventory: Path, tmp_path: Path, broker: Mosquitto) -> Iterator[TrackerApp]:
    """In-process tracker with no evaluation timer: the test evaluates at instants it chooses."""
    settings = TrackerSettings(thresholds=Thresholds(flatline_seconds=60, min_window_seconds=10))
    config = AppConfig(inventory, tmp_path / "tracker.db",
                       BrokerConfig(broker.host, broker.port, "tracker-in-process"),
                       "127.0.0.1", 0, settings, housekeeping=False, api_token=TOKEN)
    with TrackerApp(config) as running:
        assert running.feed.subscribed.wait(10)
        yield running


def test_flags_stall_flatline_range_and_completeness(app: TrackerApp, publisher: Publisher) -> None:
    t = app.tracker
    port = app.http.port
    dcs = t.state.sources[(LAB_CODE, "dcs")]

    def send(seq: int, samples: dict[str, float], ts: float) -> None:
        before = dcs.accepted
        publisher.batch(LAB_CODE, seq, samples, ts)
        wait_for(lambda: dcs.accepted == before + len(samples), what=f"batch {seq}")

    def flags(now: float) -> dict[str, float | None]:
        t.evaluate(now)
        labels = {"enterprise": LAB_CODE, "source": "dcs"}
        return {k: metric(port, f"hazmon_tracker_source_{k}", **labels)
                for k in ("stalled", "completeness_ratio", "tags_flatlined", "tags_out_of_range",
                          "tags_rate_violation")}

    t0 = time.time() - 100  # samples up to t0 + 70: none ahead of the tracker's clock
    send(1, GOOD, t0)
    assert flags(t0 + 1) == {"stalled": 0, "completeness_ratio": 1, "tags_flatlined": 0,
                             "tags_out_of_range": 0, "tags_rate_violation": 0}
    moving = {k: v + 0.5 for k, v in GOOD.items()}
    send(2, moving | {"TT-101": 25.0}, t0 + 59)  # TT-101 has not moved for 59 s: not yet flat (60 s)
    assert flags(t0 + 59.5)["tags_flatlined"] == 0
    send(3, GOOD | {"TT-101": 25.0, "PT-101": 3.0}, t0 + 60)  # 60 s flat; PT-101 above its 2.5 MPa range
    f = flags(t0 + 60.5)
    assert (f["tags_flatlined"], f["tags_out_of_range"]) == (1, 1)
    flagged = get_json(port, f"/api/v1/tags?enterprise={LAB_CODE}&flag=flatlined")["tags"]
    assert [x["tag"] for x in flagged] == ["TT-101"] and flagged[0]["unchanged_for"] == 60

    # GT-201 stops arriving: completeness drops once its window (max(3 x 1 s, 10 s)) has passed.
    without = {k: v + 1 for k, v in GOOD.items() if k != "GT-201"}
    send(4, without, t0 + 70)
    assert flags(t0 + 70.0)["completeness_ratio"] == 1
    assert flags(t0 + 70.5)["completeness_ratio"] == 7 / 8
    # Then the whole source stalls: flagged by the first evaluation after its window.
    assert flags(t0 + 79.9)["stalled"] == 0
    assert flags(t0 + 80.1)["stalled"] == 1
    # The shut-down plant (R4) is listed, labelled, and neither stalled nor incomplete.
    shut = {"enterprise": SHUTDOWN_CODE, "source": "gds"}
    assert metric(port, "hazmon_tracker_source_expected", **shut) == 0
    assert metric(port, "hazmon_tracker_source_stalled", **shut) == 0
    assert metric(port, "hazmon_tracker_source_completeness_ratio", **shut) is None


def test_metrics_pass_promtool_and_api_answers(app: TrackerApp, publisher: Publisher) -> None:
    port = app.http.port
    publisher.batch(LAB_CODE, 1, GOOD | {"LT-101": 18.6}, time.time())
    publisher.raw(f"hazmon/v1/5101/{LAB_CODE}/dcs", b"not json")
    wait_for(lambda: metric(port, "hazmon_tracker_messages_malformed_total", reason="not_json") == 1,
             what="the malformed message")
    app.tracker.evaluate()
    _, body = get(port, "/metrics")
    check = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
    text = body.decode()
    assert f'hazmon_tracker_source_tags_in_alarm{{enterprise="{LAB_CODE}",level="high_high",source="dcs"}} 1.0' \
        in text
    for line in text.splitlines():  # a value and no sample timestamp after the name and labels
        if line and not line.startswith("#"):
            after = line.rsplit("}", 1)[1] if "{" in line else line.split(" ", 1)[1]
            assert len(after.split()) == 1, line

    ents = get_json(port, "/api/v1/enterprises")["enterprises"]
    assert {e["code"]: e["expected"] for e in ents} == {LAB_CODE: True, SHUTDOWN_CODE: False}
    one = get_json(port, f"/api/v1/enterprises/{LAB_CODE}")
    lt = next(x for x in one["sources"][0]["tags"] if x["tag"] == "LT-101")
    assert lt["alarm"] == "high_high" and lt["in_alarm"] and lt["value"] == 18.6
    assert get(port, "/api/v1/tags")[0] == 400
    assert get(port, "/api/v1/enterprises/91510100MALABE0099")[0] == 404
    assert get(port, f"/api/v1/tags?enterprise={LAB_CODE}&flag=bogus")[0] == 400
