"""MQTT uplink: publish queued batches (QoS 1); delete them once the province has committed them.

One sender thread owns the publish order and every change to the queue it makes:
- live batches (written after the current connection came up) go out at once, so the
  platform's freshness recovers as soon as the line is back;
- the backlog (everything older that is neither in flight nor delivered) is replayed oldest
  first, interleaved with live data, within a byte budget (queue.replay_bytes_per_second);
- batches the province demonstrably did not get (custody.py) are sent again, within the same budget.
paho keeps the in-flight window (at most mqtt.max_inflight messages) and re-sends it itself
after a reconnect; the backlog skips those seqs. A copy may still reach the broker twice
(PUBACK lost, a re-send): the tracker drops it by (gw, ep, seq).

Custody (queue.delete_on: committed, docs/wire.md): a PUBACK only marks a batch delivered. The
tracker publishes, retained, the seqs of this queue epoch it has durably committed to the
gateway's own ack topic (wire.ack_topic); each such message deletes those rows, in one
transaction. With queue.delete_on: puback a PUBACK deletes the batch, as a plain receiver needs.
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
import ssl
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from hazmon import wire
from hazmon.collector.backoff import backoff_delays
from hazmon.collector.config import CollectorConfig, read_secret
from hazmon.collector.custody import Custody
from hazmon.collector.queue import DurableQueue, Row
from hazmon.collector.stats import UplinkStats
from hazmon.collector.wireformat import message

log = logging.getLogger(__name__)

_FETCH = 64  # rows per queue read
# After (re)subscribing to the ack topic, the backlog replay waits this long for the retained
# committed-seqs message (the broker sends it right after the SUBACK), so that batches the
# province already has are deleted rather than sent again.
RETAINED_GRACE = 1.0
IGNORED_REASONS = ("malformed", "other_gateway", "other_epoch")


class Uplink:
    def __init__(self, cfg: CollectorConfig, queue: DurableQueue, stats: UplinkStats) -> None:
        self.cfg = cfg
        self.queue = queue
        self.stats = stats
        self.ack_topic = wire.ack_topic(cfg.city, cfg.gateway)
        self.custody = (Custody(cfg.mqtt.max_inflight, cfg.queue.resend_after)
                        if cfg.queue.delete_on == "committed" else None)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._acked: deque[int] = deque()  # mids from paho's thread, resolved by the sender thread
        self._committed_in: deque[bytes] = deque()  # ack-topic payloads from paho's thread
        self._pending: tuple[wire.Committed, int] | None = None  # (message, last seq then) to apply
        self._resend: list[int] = []  # heap of seqs to send again
        self._connected = threading.Event()
        self._reset = threading.Event()
        self._subscribed_at: float | None = None  # monotonic; None until the SUBACK of this connection
        self._committed_seen = False  # a message for our epoch arrived on this connection
        self._inflight: dict[int, tuple[int, int]] = {}  # mid -> (seq, samples)
        self._thread: threading.Thread | None = None
        self._flush_deadline = 0.0
        self._delete_failing = False
        self._delays = backoff_delays(cfg.backoff)
        self.client = self._make_client()

    # ------------------------------------------------------------------ paho side

    def _make_client(self) -> mqtt.Client:
        m = self.cfg.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=m.client_id or self.cfg.gateway,
            clean_session=True,  # the broker's session is not what keeps data (our queue is)
            protocol=mqtt.MQTTv311,
        )
        if m.username is not None and m.password_file is not None:
            client.username_pw_set(m.username, read_secret(m.password_file, "mqtt.password_file"))
        if m.tls:
            client.tls_set(
                ca_certs=str(m.ca_file) if m.ca_file else None,
                certfile=str(m.cert_file) if m.cert_file else None,
                keyfile=str(m.key_file) if m.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.max_inflight_messages_set(m.max_inflight)
        client.max_queued_messages_set(0)  # unbounded inside paho; our window bounds it
        self._next_reconnect_delay(client)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _next_reconnect_delay(self, client: mqtt.Client) -> None:
        # paho's own backoff has no jitter; thousands of gateways must not reconnect in lockstep
        # after a broker restart, so each wait is set from our jittered exponential sequence.
        delay = next(self._delays)
        client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]

    def _on_connect_fail(self, client, userdata) -> None:
        self._next_reconnect_delay(client)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the connection: %s", self.cfg.mqtt.host, self.cfg.mqtt.port,
                        reason_code)
            self.stats.refusals += 1
            self._next_reconnect_delay(client)
            return
        self._delays = backoff_delays(self.cfg.backoff)
        log.info("connected to broker %s:%s", self.cfg.mqtt.host, self.cfg.mqtt.port)
        self.stats.connects += 1
        self.stats.connected = True
        self._subscribed_at = None
        self._committed_seen = False
        if self.custody is not None:
            # A clean session forgets subscriptions: subscribe again on every connection.
            client.subscribe(self.ack_topic, qos=1)
        self._reset.set()
        self._connected.set()
        self._wake.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("the broker refused the subscription to %s (%s): the province's commits cannot "
                      "reach this gateway, so nothing is deleted from its queue (see the broker ACL)",
                      self.ack_topic, refused[0])
        self.stats.ack_subscribed = not refused
        self._subscribed_at = time.monotonic()
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self.ack_topic:
            self._committed_in.append(msg.payload)
            self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("lost the broker: %s", reason_code)
        self.stats.connected = False
        self.stats.ack_subscribed = False
        self._connected.clear()
        self._next_reconnect_delay(client)
        self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acked.append(mid)
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        m = self.cfg.mqtt
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A new batch is in the queue."""
        self._wake.set()

    def stop(self, flush_timeout: float) -> None:
        """Wait up to flush_timeout for the queue to empty (if connected), then disconnect.

        With custody the queue empties when the province has committed everything; what it has
        not stays queued for the next start (and is replayed then)."""
        self._flush_deadline = time.monotonic() + flush_timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(flush_timeout + 5)
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        rate = self.cfg.queue.replay_bytes_per_second
        tokens, last = rate, time.monotonic()
        live_floor = live_cursor = backlog_cursor = 0
        while True:
            self._wake.wait(0.1)
            self._wake.clear()
            try:
                self._resolve_acks()
                self._apply_committed()
                if self._stopping.is_set() and (
                    time.monotonic() >= self._flush_deadline
                    or not self._connected.is_set()
                    or (self.queue.depth_batches == 0 and not self._inflight)
                ):
                    return
                if not self._connected.is_set():
                    continue
                if self._reset.is_set():
                    self._reset.clear()
                    # Everything written before this connection is backlog; paho re-sends its own
                    # in-flight window, and delivered batches wait for the province: both skipped.
                    live_floor = live_cursor = self.queue.last_seq
                    backlog_cursor = 0
                    self._resend.clear()  # undelivered, so in the backlog that is replayed now
                now = time.monotonic()
                tokens = min(rate, tokens + (now - last) * rate)
                last = now
                live_cursor = self._send_range(live_cursor, None, None)
                if tokens > 0 and self._ack_ready(now):
                    budget = [tokens]
                    self._send_resends(budget)
                    if backlog_cursor < live_floor and budget[0] > 0:
                        backlog_cursor = self._send_range(backlog_cursor, live_floor, budget)
                        if backlog_cursor >= live_floor:
                            log.info("backlog replayed up to seq %d", live_floor)
                    if budget[0] < tokens:
                        self._wake.set()  # keep replaying while the budget allows
                    tokens = budget[0]
            except Exception:
                # e.g. a full disk: the data stays queued; retry rather than let the uplink die.
                log.exception("uplink sender failed; retrying in 1 s")
                time.sleep(1)

    def _ack_ready(self, now: float) -> bool:
        """May the backlog be replayed? With custody, not before the retained committed-seqs
        message had its chance to remove what the province already has."""
        if self.custody is None or self._committed_seen:
            return True
        return self._subscribed_at is not None and now - self._subscribed_at >= RETAINED_GRACE

    def _skip(self, seq: int, inflight_seqs: set[int]) -> bool:
        return seq in inflight_seqs or (self.custody is not None and seq in self.custody)

    def _send_range(self, cursor: int, upto: int | None, budget: list[float] | None) -> int:
        """Publish rows after `cursor` (up to `upto`) while the window and budget allow; new cursor."""
        window = self.cfg.mqtt.max_inflight
        inflight_seqs = {seq for seq, _ in self._inflight.values()}
        while len(self._inflight) < window and (budget is None or budget[0] > 0):
            rows = self.queue.fetch(cursor, upto, min(_FETCH, window - len(self._inflight)))
            if not rows:
                if upto is not None:
                    cursor = upto  # nothing left in the backlog range
                break
            for row in rows:
                if self._skip(row.seq, inflight_seqs):
                    cursor = row.seq
                    continue
                if len(self._inflight) >= window or (budget is not None and budget[0] <= 0):
                    return cursor
                size = self._publish(row)
                if size < 0:
                    return cursor  # client refused (not a disconnect); retry this row next round
                if budget is not None:
                    budget[0] -= size
                    self.stats.replayed_batches += 1
                cursor = row.seq
        return cursor

    def _send_resends(self, budget: list[float]) -> None:
        """Send again the batches the province demonstrably did not get (same seq and epoch)."""
        window = self.cfg.mqtt.max_inflight
        while self._resend and len(self._inflight) < window and budget[0] > 0:
            n = min(_FETCH, window - len(self._inflight), len(self._resend))
            seqs = [heapq.heappop(self._resend) for _ in range(n)]
            rows = {r.seq: r for r in self.queue.fetch_seqs(seqs)}
            inflight_seqs = {seq for seq, _ in self._inflight.values()}
            for i, seq in enumerate(seqs):
                row = rows.get(seq)
                if row is None or seq in inflight_seqs:
                    continue  # deleted meanwhile (committed late, dropped at the cap), or on its way
                size = self._publish(row) if budget[0] > 0 else -1
                if size < 0:
                    for s in seqs[i:]:
                        heapq.heappush(self._resend, s)
                    return
                budget[0] -= size
                self.stats.resent_batches += 1

    def _publish(self, row: Row) -> int:
        payload = message(self.cfg.gateway, row.seq, row.source, row.samples, time.time(), self.queue.epoch)
        info = self.client.publish(wire.topic(self.cfg.city, self.cfg.gateway, row.source), payload, qos=1)
        # NO_CONN: paho keeps a QoS 1 message and sends it when the connection is back.
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("publish of seq %d refused by the client: %s", row.seq, mqtt.error_string(info.rc))
            return -1
        self._inflight[info.mid] = (row.seq, row.n)
        self.stats.batches_sent += 1
        self.stats.inflight = len(self._inflight)
        return len(payload)

    def _resolve_acks(self) -> None:
        seqs: list[int] = []
        now = time.monotonic()
        while self._acked:
            mid = self._acked.popleft()
            entry = self._inflight.pop(mid, None)
            if entry is None:
                # Not ours to count (publish and bookkeeping happen on this thread, so no race).
                log.debug("PUBACK for unknown mid %d", mid)
                continue
            seqs.append(entry[0])
            self.stats.batches_published += 1
            self.stats.samples_published += entry[1]
            if self.custody is not None:
                self.custody.delivered(entry[0], now)
        if seqs:
            if self.custody is None:
                self.queue.ack(seqs)  # a failure leaves the rows queued: replayed after a reconnect
            self.stats.last_ack = time.time()
        self.stats.inflight = len(self._inflight)
        if self.custody is not None:
            self.stats.unconfirmed = len(self.custody)

    def _apply_committed(self) -> None:
        """Delete what the province committed; then find what it demonstrably lost."""
        while self._committed_in:
            payload = self._committed_in.popleft()
            try:
                c = wire.decode_committed(payload)
            except wire.WireError as exc:
                self._ignore("malformed", f"{exc}")
                continue
            if c.gateway != self.cfg.gateway:
                self._ignore("other_gateway", f"gateway {c.gateway!r}")
                continue
            if c.epoch != self.queue.epoch:
                # e.g. the retained message of the queue this gateway had before a re-image.
                self._ignore("other_epoch", f"epoch {c.epoch}, ours is {self.queue.epoch}")
                continue
            # Each message holds every committed range of the epoch: the latest supersedes.
            self._pending = (c, self.queue.last_seq)
            self._committed_seen = True
            self.stats.last_committed = c.at
        if self._pending is not None and self.custody is not None:
            c, upto = self._pending
            try:
                deleted = self.queue.delete_committed(c.ranges, upto)
            except sqlite3.Error as exc:
                # Kept, and tried again on the next round (a full disk frees up, a lock ends).
                if not self._delete_failing:
                    log.error("queue %s: cannot delete the batches the province committed: %s; retrying",
                              self.queue.path, exc)
                self._delete_failing = True
                return
            if self._delete_failing:
                log.info("queue %s: deleting committed batches works again", self.queue.path)
            self._delete_failing = False
            self._pending = None
            self.custody.confirmed(deleted.seqs)
            self.stats.batches_confirmed += len(deleted.seqs)
            self.stats.samples_confirmed += deleted.samples
        if self.custody is not None:
            due = self.custody.due(time.monotonic())
            if due:
                for seq in due:
                    heapq.heappush(self._resend, seq)
                log.warning("%d batch(es) (seqs %d..%d) were delivered to the broker but the province "
                            "committed later ones and not these: sending them again", len(due), min(due), max(due))
            self.stats.unconfirmed = len(self.custody)

    def _ignore(self, reason: str, detail: str) -> None:
        self.stats.committed_ignored[reason] += 1
        log.warning("ignored a committed-seqs message on %s (%s): %s", self.ack_topic, reason, detail)
