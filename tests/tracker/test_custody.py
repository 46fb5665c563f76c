"""Custody, tracker side: after each commit, each gateway learns what the province holds of its queue.

Integration on a real Mosquitto: batches are published as the gateway would, the gateway's ack
topic is watched as the gateway would (QoS 1, retained), and every Committed message is checked,
when it arrives, against what the state file holds at that moment: never ahead of the commit,
and nothing of a failed one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazmon import wire
from hazmon.testing.procs import Mosquitto
from hazmon.tracker.app import AppConfig, TrackerApp
from hazmon.tracker.mqtt import BrokerConfig
from hazmon.tracker.settings import TrackerSettings
from hazmon.tracker.store import read_seen
from tracker.helpers import GOOD, Publisher, wait_for
from tracker.inventory import LAB_CODE

pytestmark = pytest.mark.integration

EP_A, EP_B = 6120598016474632931, 77
ACK_TOPIC = wire.ack_topic("5101", LAB_CODE)


def committed_ranges(state: Path) -> tuple[int, list[tuple[int, int]]]:
    """(epoch, seen seqs as ranges) of the lab gateway, as the state file holds them now."""
    seen = read_seen(state).get(LAB_CODE)
    if seen is None:
        return 0, []
    epoch, seqs = seen
    return epoch, list(zip(seqs.los, seqs.his, strict=True))


def covered(ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]], seq: int) -> bool:
    return any(lo <= seq <= hi for lo, hi in ranges)


class Gateway:
    """Watches its ack topic as the collector does; checks each message against the state file."""

    def __init__(self, broker: Mosquitto, state: Path, client_id: str) -> None:
        self.state = state
        self.messages: list[wire.Committed] = []
        self.problems: list[str] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(ACK_TOPIC, qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        try:
            got = wire.decode_committed(msg.payload)
            epoch, held = committed_ranges(self.state)
            ahead = [r for r in got.ranges if not any(lo <= r[0] and r[1] <= hi for lo, hi in held)]
            if got.gateway != LAB_CODE or got.epoch != epoch or ahead:
                self.problems.append(f"{got} is ahead of what the state file holds: epoch {epoch}, {held}")
        except Exception as exc:  # recorded: an exception here would be lost in paho's thread
            self.problems.append(repr(exc))
            return
        with self.lock:
            self.messages.append(got)

    @property
    def last(self) -> wire.Committed | None:
        with self.lock:
            return self.messages[-1] if self.messages else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_committed_seqs_reach_the_gateway_and_never_run_ahead_of_the_commit(
        inventory: Path, tmp_path: Path, broker: Mosquitto, publisher: Publisher) -> None:
    state = tmp_path / "tracker.db"
    settings = TrackerSettings(flush_every_seconds=0.05, flush_retry_initial_seconds=0.1, flush_retry_max_seconds=0.5,
                               state_busy_timeout_seconds=0.1)
    config = AppConfig(inventory, state, BrokerConfig(broker.host, broker.port, "tracker-custody"),
                       "127.0.0.1", 0, settings)
    gateway = Gateway(broker, state, "gateway-acks")
    t0 = time.time() - 600
    started = time.monotonic()
    with TrackerApp(config) as app:
        assert app.feed.subscribed.wait(10)
        for seq in (1, 2, 3, 4, 5, 7):  # 6 lost on the way
            publisher.batch(LAB_CODE, seq, GOOD, t0 + seq, epoch=EP_A)
        wait_for(lambda: gateway.last is not None and gateway.last.ranges == ((1, 5), (7, 7)), timeout=20,
                 what="the committed seqs 1-5 and 7")
        assert gateway.last.epoch == EP_A and gateway.last.gateway == LAB_CODE
        assert time.time() - 60 < gateway.last.at <= time.time()
        # Throttled: at most one message a second (committed_publish_interval_seconds), plus the first.
        assert len(gateway.messages) <= (time.monotonic() - started) / settings.committed_publish_interval_seconds + 1

        # A failing commit: what it would have held is never announced.
        other = sqlite3.connect(state, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            for seq in (8, 9, 10):
                publisher.batch(LAB_CODE, seq, GOOD, t0 + seq, epoch=EP_A)
            wait_for(lambda: app.tracker.state.gateways[LAB_CODE].current.highest == 10, what="8-10 in memory")
            failures = app.tracker.flush_failures
            wait_for(lambda: app.tracker.flush_failures >= failures + 3, what="three more failed commits")
            assert not any(covered(m.ranges, s) for m in gateway.messages for s in (8, 9, 10))
        finally:
            other.execute("ROLLBACK")
            other.close()
        wait_for(lambda: gateway.last is not None and gateway.last.ranges == ((1, 5), (7, 10)), timeout=20,
                 what="8-10 once committed")

        # A re-imaged gateway: only its new queue epoch is announced.
        publisher.batch(LAB_CODE, 1, GOOD, t0 + 100, epoch=EP_B)
        wait_for(lambda: gateway.last is not None and gateway.last.epoch == EP_B, timeout=20, what="the new epoch")
        assert gateway.last.ranges == ((1, 1),)

    # Retained: a gateway (re)connecting after the fact gets the latest state at once.
    late = Gateway(broker, state, "gateway-acks-late")
    try:
        wait_for(lambda: late.last is not None, what="the retained message")
        assert (late.last.epoch, late.last.ranges) == (EP_B, ((1, 1),))
    finally:
        late.close()
        gateway.close()
    assert gateway.problems == [] and late.problems == []
