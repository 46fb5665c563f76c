"""The tracker proper: receive, dedup and remember batches; flush durably; evaluate on a timer.

Threads: paho's network thread calls `receive`; a flush loop commits, acknowledges and tells the
gateways what is committed (custody); an evaluation loop computes the flags; HTTP handler
threads read. One lock guards the in-memory state; decoding a message happens before it is
taken, and the evaluation and the API take it in short pieces, so that none of them stalls
ingest. A second lock orders flushes so that acknowledgements follow the commit that holds
their messages.

Nothing a message carries can raise out of `receive`: a payload is accepted or counted as
malformed with its reason, and acknowledged after the commit that holds its count. A failed
commit is rolled back and kept for the next attempt (capped exponential backoff); its messages
are acknowledged only once a commit holds them, and no Committed message covers them before.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hazmon.tracker.evaluate import Evaluation, SourceEval, evaluate_source
from hazmon.tracker.expected import ExpectedEnterprise
from hazmon.tracker.health import Health
from hazmon.tracker.settings import TrackerSettings
from hazmon.tracker.state import Dirty, FeedState
from hazmon.tracker.store import Store
from hazmon.wire import REASONS, Batch, Committed, WireError, ack_topic, decode, parse_topic

log = logging.getLogger(__name__)

Acker = Callable[[list[tuple[int, int]]], None]
Publisher = Callable[[str, bytes], None]  # (topic, payload): retained, QoS 1

# Why a message was counted as malformed: the wire's reasons, a topic that is not a data topic,
# and a batch whose gw/src differ from its topic's (N4: one gateway per site, under its own code).
TOPIC, TOPIC_MISMATCH = "topic", "topic_mismatch"
MALFORMED_REASONS = (*REASONS, TOPIC, TOPIC_MISMATCH)
MESSAGE_ERRORS = "message_errors"  # counter: a message whose handling raised (a bug), dropped
# Sources evaluated per hold of the lock: a 440,000-tag evaluation takes ~0.3 s, ingest waits
# for one piece at most.
EVALUATION_PIECE = 256


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
        self.state = FeedState(enterprises, settings.max_seq_gaps, settings.max_future_skew_seconds)
        self.store = Store(state_file, settings.state_busy_timeout_seconds)
        purged = self.store.purge_future(clock() + settings.max_future_skew_seconds)
        if purged:
            log.warning("%s: forgot %d tag values stamped in the future (gateways %s): each tag reads as "
                        "never seen until its next sample", state_file, sum(purged.values()),
                        ", ".join(sorted(purged)))
        self.store.load_into(self.state)
        self.health = Health(clock)
        self.lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[tuple[int, int]] = []  # (mid, qos) received, not yet committed
        # A flush that failed to commit: its rows and its messages, for the next attempt.
        self._unwritten: Dirty | None = None
        self._unwritten_acks: list[tuple[int, int]] = []
        self._retry_delay = 0.0
        self._retry_at = float("-inf")  # time.monotonic()
        self.flush_failures = 0
        self.acker: Acker | None = None
        # Custody: each gateway's latest committed seqs (epoch, SeqSet JSON as written, commit
        # time) not yet published, and when it was last published (time.monotonic()).
        self.publisher: Publisher | None = None
        self._committed: dict[str, tuple[int, str, float]] = {}
        self._published_at: dict[str, float] = {}
        self._publish_lock = threading.Lock()
        self.committed_published = 0
        self.evaluation = Evaluation(0.0, 0.0, {})
        self.evaluate()

    # ------------------------------------------------------------------ data path

    def receive(self, topic: str, payload: bytes, mid: int = 0, qos: int = 0) -> str:
        """One MQTT message. Returns the outcome's name (for tests and logs); never raises for
        anything the message holds. Its acknowledgement waits for the commit that holds it."""
        outcome, held, due = "error", False, False
        try:
            now = self.clock()
            found = self._decode(topic, payload)  # outside the lock: the costly part
            with self.lock:
                if isinstance(found, Batch):
                    outcome = self.state.ingest(found, now).value
                else:
                    self.state.count(f"malformed_{found}")
                    outcome = "malformed"
                held, due = True, self._hold(mid, qos)
        except Exception:
            log.exception("a message on %.200r (%d bytes) could not be handled: counted, dropped, and "
                          "acknowledged with the next commit", topic, len(payload))
            self.count_error()
        finally:
            if not held:
                with self.lock:
                    due = self._hold(mid, qos)
        # After a failed commit the flush loop tries again (backoff): not paho's network thread.
        if due and self._unwritten is None:
            self.flush()
        return outcome

    def _decode(self, topic: str, payload: bytes) -> Batch | str:
        """The batch, or why it is malformed (one of MALFORMED_REASONS)."""
        try:
            _city, enterprise, source = parse_topic(topic)
        except WireError:
            return TOPIC
        try:
            batch = decode(payload)
        except WireError as exc:
            log.debug("malformed message on %s (%s): %s", topic, exc.reason, exc)
            return exc.reason
        # N4: one gateway per site publishes under its own enterprise code; anything else is a
        # misconfigured or spoofing gateway, and its seqs must not poison another's dedup state.
        if batch.gateway != enterprise or batch.source != source:
            return TOPIC_MISMATCH
        return batch

    def _hold(self, mid: int, qos: int) -> bool:
        """Keep a message's acknowledgement for after the next commit; True when a flush is due.
        Caller holds the lock."""
        if qos > 0:
            self._pending.append((mid, qos))
        return len(self._pending) >= self.settings.max_unacked

    def count_error(self) -> None:
        with self.lock:
            self.state.count(MESSAGE_ERRORS)

    @property
    def unacked(self) -> int:
        return len(self._pending) + len(self._unwritten_acks)

    # ------------------------------------------------------------------ durability

    def flush(self, force: bool = False) -> int:
        """Commit what changed, then acknowledge the messages it covers. Returns rows committed.

        A failed commit is rolled back; its rows and messages wait for the next attempt, which
        comes after a backoff (unless `force`). Never raises for a failed commit."""
        with self._flush_lock:
            if not force and time.monotonic() < self._retry_at:
                return 0
            with self.lock:
                dirty = self.state.take_dirty()
                acks, self._pending = self._pending, []
            if self._unwritten is not None:
                dirty, acks = self._unwritten.merged(dirty), self._unwritten_acks + acks
                self._unwritten, self._unwritten_acks = None, []
            try:
                if dirty.rows:
                    self.store.write(dirty)
            except Exception as exc:
                self._unwritten, self._unwritten_acks = dirty, acks
                self._failed(exc, dirty.rows, len(acks))
                return 0
            at = self.clock()
            self._retry_delay, self._retry_at = 0.0, float("-inf")
            self.health.success("flush", at)
            if acks and self.acker is not None:
                try:
                    self.acker(acks)
                except Exception:  # committed: the broker resends them, and they are duplicates
                    log.exception("acknowledging %d committed messages failed", len(acks))
            for gw, seqs, epoch, *_ in dirty.gateways:
                self._committed[gw] = (epoch, seqs, at)
            return dirty.rows

    def _failed(self, exc: Exception, rows: int, messages: int) -> None:
        s = self.settings
        self.flush_failures += 1
        self._retry_delay = min(max(2 * self._retry_delay, s.flush_retry_initial_seconds), s.flush_retry_max_seconds)
        self._retry_at = time.monotonic() + self._retry_delay
        self.health.failure("flush", f"{type(exc).__name__}: {exc}")
        log.error("%s: commit of %d rows failed (%s: %s): rolled back; %d messages stay unacknowledged; next "
                  "attempt in %.1f s", self.store.path, rows, type(exc).__name__, exc, messages, self._retry_delay)

    # ------------------------------------------------------------------ custody

    def publish_committed(self, force: bool = False) -> int:
        """Tell each gateway with newly committed seqs what the province holds of its current
        queue epoch (wire.Committed, retained, QoS 1): at most once per gateway per
        committed_publish_interval_seconds (unless `force`); a held-back update goes out on a
        later call. Only ever from rows a commit wrote. Returns the messages published."""
        if self.publisher is None or not self._committed:
            return 0
        now, every = time.monotonic(), self.settings.committed_publish_interval_seconds
        sent = 0
        with self._publish_lock:
            for gw in list(self._committed):
                if not force and now - self._published_at.get(gw, float("-inf")) < every:
                    continue
                epoch, seqs, at = self._committed.pop(gw)
                ent = self.state.enterprises.get(gw)
                if ent is None:
                    continue
                los, his, _abandoned = json.loads(seqs)
                message = Committed(gw, epoch, tuple(zip(los, his, strict=True)), at)
                try:
                    self.publisher(ack_topic(ent.city, gw), message.encode())
                except Exception:
                    self._committed.setdefault(gw, (epoch, seqs, at))
                    log.exception("publishing %s's committed seqs failed; tried again later", gw)
                    continue
                self._published_at[gw] = now
                sent += 1
        self.committed_published += sent
        return sent

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, now: float | None = None) -> Evaluation:
        """Recompute every source's flags at `now` (default: the clock) and publish the result."""
        started = time.perf_counter()
        at = self.clock() if now is None else now
        th = self.settings.thresholds
        items = list(self.state.sources.items())  # fixed at start: the inventory's sources
        sources: dict[tuple[str, str], SourceEval] = {}
        for i in range(0, len(items), EVALUATION_PIECE):
            with self.lock:
                for key, src in items[i:i + EVALUATION_PIECE]:
                    sources[key] = evaluate_source(src, at, th)
        self.evaluation = Evaluation(at, time.perf_counter() - started, sources)
        self.health.success("evaluation")
        return self.evaluation

    def close(self) -> None:
        self.flush(force=True)
        if self._unwritten is not None:
            log.error("%s: the last commit failed: %d messages were not acknowledged; the broker delivers "
                      "them again to the next start", self.store.path, len(self._unwritten_acks))
        self.store.close()


class Housekeeper:
    """The flush loop (commit, acknowledge, publish what is committed) and the evaluation loop.

    Separate threads, so that a stuck disk does not stop the evaluation; neither ever dies: an
    exception is logged with its traceback, counted, and the loop goes on."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.stopping = threading.Event()
        s = tracker.settings
        self.threads = [
            threading.Thread(target=self._loop, args=("flush", s.flush_every_seconds, self._flush),
                             name="tracker-flush", daemon=True),
            threading.Thread(target=self._loop, args=("evaluation", s.evaluate_every_seconds, tracker.evaluate),
                             name="tracker-evaluation", daemon=True),
        ]

    def _flush(self) -> None:
        self.tracker.flush()
        self.tracker.publish_committed()

    def _loop(self, name: str, period: float, step: Callable[[], object]) -> None:
        while not self.stopping.wait(period):
            try:
                step()
            except Exception as exc:
                self.tracker.health.failure(name, f"{type(exc).__name__}: {exc}", unexpected=True)
                log.exception("%s loop: unexpected error; going on", name)

    def start(self) -> None:
        s, health = self.tracker.settings, self.tracker.health
        for thread, period in zip(self.threads, (s.flush_every_seconds, s.evaluate_every_seconds), strict=True):
            health.register(thread.name.removeprefix("tracker-"), s.stale_after(period), thread.is_alive)
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)
