"""The tracker proper: receive, dedup and remember batches; flush durably; evaluate on a timer.

Threads: paho's network thread calls `receive`; one housekeeping thread flushes and evaluates;
HTTP handler threads read. One lock guards the in-memory state; a second orders flushes so that
acknowledgements follow the commit that holds their messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.tracker.evaluate import Evaluation, evaluate
from hazmon.tracker.expected import ExpectedEnterprise
from hazmon.tracker.settings import TrackerSettings
from hazmon.tracker.state import FeedState
from hazmon.tracker.store import Store
from hazmon.wire import WireError, decode, parse_topic

Acker = Callable[[list[tuple[int, int]]], None]


@dataclass
class Health:
    mqtt_connected: bool = False
    last_flush_ts: float = float("-inf")
    flushes: int = 0
    started_at: float = field(default_factory=time.time)


class Tracker:
    def __init__(
        self,
        enterprises: dict[str, ExpectedEnterprise],
        settings: TrackerSettings,
        state_file: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.state = FeedState(enterprises, settings.max_seq_gaps)
        self.store = Store(state_file)
        self.store.load_into(self.state)
        self.health = Health(started_at=clock())
        self.lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[tuple[int, int]] = []  # (mid, qos) received, not yet committed
        self._pending_since = 0.0
        self.acker: Acker | None = None
        self.evaluation = Evaluation(0.0, 0.0, {})
        self.evaluate()

    # ------------------------------------------------------------------ data path

    def receive(self, topic: str, payload: bytes, mid: int = 0, qos: int = 0) -> str:
        """One MQTT message. Returns the outcome's name (for tests and logs)."""
        now = self.clock()
        with self.lock:
            outcome = self._apply(topic, payload, now)
            if qos > 0:
                if not self._pending:
                    self._pending_since = now
                self._pending.append((mid, qos))
            due = len(self._pending) >= self.settings.max_unacked
        if due:
            self.flush()
        return outcome

    def _apply(self, topic: str, payload: bytes, now: float) -> str:
        try:
            _city, enterprise, source = parse_topic(topic)
            batch = decode(payload)
        except WireError:
            self.state.count("malformed_schema")
            return "malformed"
        # N4: one gateway per site publishes under its own enterprise code; anything else is a
        # misconfigured or spoofing gateway, and its seqs must not poison another's dedup state.
        if batch.gateway != enterprise or batch.source != source:
            self.state.count("malformed_topic_mismatch")
            return "malformed"
        return self.state.ingest(batch, now).value

    def flush(self) -> int:
        """Commit what changed, then acknowledge the messages it covers. Returns rows written."""
        with self._flush_lock:
            with self.lock:
                dirty = self.state.take_dirty()
                acks, self._pending = self._pending, []
            rows = len(dirty.tags) + len(dirty.sources) + len(dirty.gateways) + len(dirty.counters)
            if rows:
                self.store.write(dirty)
            if acks and self.acker is not None:
                self.acker(acks)
            self.health.last_flush_ts = self.clock()
            self.health.flushes += 1
            return rows

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, now: float | None = None) -> Evaluation:
        """Recompute every source's flags at `now` (default: the clock) and publish the result."""
        started = time.perf_counter()
        at = self.clock() if now is None else now
        with self.lock:
            sources = evaluate(self.state, at, self.settings.thresholds)
        self.evaluation = Evaluation(at, time.perf_counter() - started, sources)
        return self.evaluation

    def close(self) -> None:
        self.flush()
        self.store.close()


class Housekeeper(threading.Thread):
    """Flushes on a short timer and evaluates every `evaluate_every_seconds`."""

    def __init__(self, tracker: Tracker) -> None:
        super().__init__(name="tracker-housekeeping", daemon=True)
        self.tracker = tracker
        self.stopping = threading.Event()

    def run(self) -> None:
        s = self.tracker.settings
        next_eval = time.monotonic() + s.evaluate_every_seconds
        while not self.stopping.wait(min(s.flush_every_seconds, s.evaluate_every_seconds)):
            self.tracker.flush()
            if time.monotonic() >= next_eval:
                self.tracker.evaluate()
                next_eval = time.monotonic() + s.evaluate_every_seconds

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
