"""No payload stops the tracker: each is accepted or counted as malformed with its reason, and acked.

Integration: the real hazmon-tracker program, a real Mosquitto on loopback, a paho publisher.
Unit: the guards themselves (receive's, and the last resort in the MQTT callback).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hazmon.testing.procs import Mosquitto
from hazmon.tracker.expected import load_expectations
from hazmon.tracker.mqtt import BrokerConfig, MqttFeed
from hazmon.tracker.service import Tracker
from hazmon.tracker.settings import TrackerSettings
from hazmon.wire import Batch, Sample, topic
from tracker.helpers import GOOD, N, Publisher, TrackerProcess, get, metric, source_counts, wait_for
from tracker.inventory import LAB_CODE, SHUTDOWN_CODE
from tracker.payloads import KILLERS

DCS_TOPIC = topic("5101", LAB_CODE, "dcs")
# Beyond the wire: a batch under another enterprise's topic (N4) is refused by the tracker.
SPOOFED = (topic("5101", SHUTDOWN_CODE, "gds"),
           Batch(LAB_CODE, 1, "dcs", (Sample("LT-101", 1.0, 2.0),)).encode(), "topic_mismatch")


def malformed(port: int) -> dict[str, float]:
    reasons = ("too_large", "not_json", "schema", "topic", "topic_mismatch")
    return {r: metric(port, "hazmon_tracker_messages_malformed_total", reason=r) or 0 for r in reasons}


def healthy(port: int) -> bool:
    status, body = get(port, "/healthz")
    return status == 200 and body.startswith(b"ok")


@pytest.mark.integration
def test_no_payload_stops_the_tracker_nor_its_restart(
        inventory: Path, tmp_path: Path, broker: Mosquitto, publisher: Publisher) -> None:
    tp = TrackerProcess(inventory, tmp_path / "state" / "tracker.db", broker, tmp_path / "tracker.log",
                        api_token=False)
    t0 = time.time() - 3600
    try:
        tp.start()
        port = tp.port
        expected: Counter[str] = Counter()
        cases = [(name, DCS_TOPIC, payload, reason) for name, (payload, reason) in KILLERS.items()]
        cases.append(("a batch under another enterprise's topic", *SPOOFED))
        seq = 0
        # Each killer, then a good batch: the good one must be accepted (the MQTT thread lives).
        for name, top, payload, reason in cases:
            publisher.raw(top, payload)
            seq += 1
            publisher.batch(LAB_CODE, seq, GOOD, t0 + seq)
            wait_for(lambda s=seq: source_counts(port)[0] == s * N, what=f"the good batch after: {name}")
            expected[reason] += 1
        assert malformed(port) == {r: float(expected[r]) for r in malformed(port)}
        assert metric(port, "hazmon_tracker_mqtt_connected") == 1
        wait_for(lambda: healthy(port), what="/healthz 200")
        # Every message was acknowledged once its count was committed: nothing waits.
        wait_for(lambda: metric(port, "hazmon_tracker_unacked_messages") == 0, what="every message acked")

        # Redelivery: a tracker that committed nothing (a flush every 60 s) is killed holding
        # killers and good batches; the broker delivers them again to the next start.
        tp.stop()
        lazy = tmp_path / "lazy.yml"
        lazy.write_text("flush_every_seconds: 60\nmax_unacked: 10000\n", encoding="utf-8")
        tp.start(settings=lazy)
        held = cases[:8]  # 16 messages: under Mosquitto's 20 in flight to one client
        for _name, top, payload, reason in held:
            publisher.raw(top, payload)
            seq += 1
            publisher.batch(LAB_CODE, seq, GOOD, t0 + seq)
            expected[reason] += 1
        wait_for(lambda: source_counts(port)[0] == seq * N, what="the held messages")
        tp.kill()
        with sqlite3.connect(tp.state) as db:
            committed = db.execute("SELECT accepted FROM sources WHERE enterprise = ?", (LAB_CODE,)).fetchone()[0]
        assert committed == (seq - len(held)) * N
        tp.start()
        wait_for(lambda: source_counts(port)[0] == seq * N, what="the redelivered good batches")
        wait_for(lambda: malformed(port) == {r: float(expected[r]) for r in malformed(port)},
                 what="the redelivered killers, each counted once")
        assert tp.alive() and metric(port, "hazmon_tracker_mqtt_connected") == 1
        wait_for(lambda: healthy(port), what="/healthz 200 after the redelivery")
        assert source_counts(port)[1] == 0  # nothing counted twice
        tp.stop()
    finally:
        if tp.alive():
            tp.kill()
    assert "Traceback" not in tp.log.read_text(encoding="utf-8")


# ------------------------------------------------------------------ the guards (unit)


def make(inventory: Path, tmp_path: Path) -> Tracker:
    settings = TrackerSettings()
    return Tracker(load_expectations(inventory, settings.thresholds), settings, tmp_path / "s.db")


def test_an_unexpected_error_in_ingest_is_counted_logged_and_acked(
        inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    t = make(inventory, tmp_path)
    acked: list[list[tuple[int, int]]] = []
    t.acker = acked.append

    def broken(batch: Batch, now: float) -> None:
        raise ZeroDivisionError("a bug in ingest")

    monkeypatch.setattr(t.state, "ingest", broken)
    payload = Batch(LAB_CODE, 1, "dcs", (Sample("LT-101", time.time(), 1.0),)).encode()
    with caplog.at_level(logging.ERROR, logger="hazmon.tracker.service"):
        assert t.receive(DCS_TOPIC, payload, mid=7, qos=1) == "error"
    assert "ZeroDivisionError: a bug in ingest" in caplog.text and "Traceback" in caplog.text
    assert t.state.counters["message_errors"] == 1
    assert acked == []  # not before the commit that holds its count
    t.flush()
    assert acked == [[(7, 1)]]
    t.close()


def test_nothing_leaves_the_mqtt_callback(
        inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    t = make(inventory, tmp_path)
    feed = MqttFeed(t, BrokerConfig("127.0.0.1", 1, "unit"))  # never started: the callback alone

    def broken(*_args: object) -> str:
        raise RuntimeError("escaped receive")

    monkeypatch.setattr(t, "receive", broken)
    msg = mqtt.MQTTMessage(mid=3, topic=DCS_TOPIC.encode())
    msg.payload, msg.qos = b"{}", 1
    with caplog.at_level(logging.ERROR, logger="hazmon.tracker.mqtt"):
        feed._on_message(feed.client, None, msg)  # must not raise
    assert "RuntimeError: escaped receive" in caplog.text and "Traceback" in caplog.text
    assert t.state.counters["message_errors"] == 1
    # A topic that is not UTF-8 (paho raises decoding it) is a malformed message, not a crash.
    monkeypatch.undo()
    bad = mqtt.MQTTMessage(mid=4, topic=b"hazmon/v1/5101/\xff/dcs")
    bad.payload, bad.qos = b"{}", 1
    feed._on_message(feed.client, None, bad)
    assert t.state.counters["malformed_topic"] == 1
    t.close()
