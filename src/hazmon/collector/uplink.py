"""MQTT uplink: publish queued batches (QoS 1) and delete each one only when the broker PUBACKs it.

One sender thread owns the publish order:
- live batches (written after the current connection came up) go out at once, so the
  platform's freshness recovers as soon as the line is back;
- the backlog (everything older that is still unacknowledged) is replayed oldest first,
  interleaved with live data, within a byte budget (queue.replay_bytes_per_second).
paho keeps the in-flight window (at most mqtt.max_inflight messages) and re-sends it itself
after a reconnect; the backlog skips those seqs. A copy may still reach the broker twice
(PUBACK lost): the tracker drops it by (gw, ep, seq).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from hazmon import wire
from hazmon.collector.backoff import backoff_delays
from hazmon.collector.config import CollectorConfig, read_secret
from hazmon.collector.queue import DurableQueue, Row
from hazmon.collector.stats import UplinkStats
from hazmon.collector.wireformat import message

log = logging.getLogger(__name__)

_FETCH = 64  # rows per queue read


class Uplink:
    def __init__(self, cfg: CollectorConfig, queue: DurableQueue, stats: UplinkStats) -> None:
        self.cfg = cfg
        self.queue = queue
        self.stats = stats
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._acked: deque[int] = deque()  # mids from paho's thread, resolved by the sender thread
        self._connected = threading.Event()
        self._reset = threading.Event()
        self._inflight: dict[int, tuple[int, int]] = {}  # mid -> (seq, samples)
        self._thread: threading.Thread | None = None
        self._flush_deadline = 0.0
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
        self._reset.set()
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("lost the broker: %s", reason_code)
        self.stats.connected = False
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
        """Wait up to flush_timeout for the queue to drain (if connected), then disconnect."""
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
                    # in-flight window, so those seqs are skipped below.
                    live_floor = live_cursor = self.queue.last_seq
                    backlog_cursor = 0
                now = time.monotonic()
                tokens = min(rate, tokens + (now - last) * rate)
                last = now
                live_cursor = self._send_range(live_cursor, None, None)
                if backlog_cursor < live_floor and tokens > 0:
                    budget = [tokens]
                    backlog_cursor = self._send_range(backlog_cursor, live_floor, budget)
                    if budget[0] < tokens:
                        self._wake.set()  # keep replaying while the budget allows
                    tokens = budget[0]
                    if backlog_cursor >= live_floor:
                        log.info("backlog replayed up to seq %d", live_floor)
            except Exception:
                # e.g. a full disk: the data stays queued; retry rather than let the uplink die.
                log.exception("uplink sender failed; retrying in 1 s")
                time.sleep(1)

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
                if row.seq in inflight_seqs:
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
        if seqs:
            self.queue.ack(seqs)
            self.stats.last_ack = time.time()
        self.stats.inflight = len(self._inflight)
