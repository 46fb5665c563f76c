"""The tracker's MQTT side: a persistent QoS 1 session, acknowledged only after a durable commit.

clean_session=False with a fixed client id: the broker queues QoS 1 messages while the tracker is
down and delivers them when it returns. manual_ack: a PUBACK leaves only after the flush that
holds the message has committed, so a crash between receipt and commit makes the broker resend
it (and the dedup state, committed with the values, drops what was already kept).

Custody: after each commit the tracker publishes, retained at QoS 1, what it holds of each
gateway's queue epoch to `wire.ack_topic` (the gateway deletes a batch only then).

No exception leaves a paho callback: paho re-raises one from its network thread, which then
dies while the process, its HTTP port and its last "connected" state live on.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hazmon.tracker.service import Tracker
from hazmon.wire import TOPIC_ROOT

log = logging.getLogger(__name__)
SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/+"


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int
    client_id: str = "hazmon-tracker"
    username: str | None = None
    password: str | None = None  # read from a file or the environment by main, never a flag
    tls: bool = False
    ca_file: Path | None = None
    keepalive: int = 30


class MqttFeed:
    def __init__(self, tracker: Tracker, config: BrokerConfig) -> None:
        self.tracker = tracker
        self.config = config
        self._stopping = threading.Event()
        self.subscribed = threading.Event()
        self._network: threading.Thread | None = None
        self._published: deque[mqtt.MQTTMessageInfo] = deque(maxlen=10_000)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=False, manual_ack=True
        )
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(ca_certs=str(config.ca_file) if config.ca_file else None,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        # Belt and braces behind the guards below: paho logs an exception of any callback and
        # its network thread goes on.
        client.suppress_exceptions = True
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self.client = client
        tracker.acker = self._ack
        tracker.publisher = self._publish

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        self.client.loop_start()
        # paho 2.2 (pinned) keeps its network thread here; it is what delivers every message,
        # so its death is what /healthz must see.
        self._network = self.client._thread
        # A connection has no period: the bound is health_stale_min_seconds out of the broker.
        self.tracker.health.register("mqtt", self.tracker.settings.stale_after(0), self.network_alive,
                                     holds=lambda: self.tracker.health.mqtt_connected)

    def network_alive(self) -> bool:
        return self._network is not None and self._network.is_alive()

    def stop(self, publish_timeout: float = 3.0) -> None:
        """Stop taking messages, commit and acknowledge what was taken, tell the gateways, disconnect."""
        self._stopping.set()
        self.tracker.flush(force=True)
        self.tracker.publish_committed(force=True)
        deadline = time.monotonic() + publish_timeout
        for info in list(self._published):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(RuntimeError, ValueError):  # paho: not queued, or disconnected
                info.wait_for_publish(left)
        self.client.disconnect()
        self.client.loop_stop()

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        for mid, qos in acks:
            self.client.ack(mid, qos)

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=True)
        if not info.is_published():
            self._published.append(info)
        while self._published and self._published[0].is_published():
            self._published.popleft()

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the connection: %s", self.config.host, self.config.port, reason)
            return
        client.subscribe(SUBSCRIPTION, qos=1)

    def _on_subscribe(self, _client, _userdata, _mid, reasons, _props) -> None:
        if any(r.is_failure for r in reasons):
            log.error("broker refused the subscription to %s: %s", SUBSCRIPTION, reasons)
            return
        # "Connected" for the metric means: subscribed, messages can flow.
        self.tracker.health.mqtt_connected = True
        self.tracker.health.success("mqtt")
        self.subscribed.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason, _props) -> None:
        health = self.tracker.health
        if health.mqtt_connected:
            health.success("mqtt")  # connected until now: the stale bound runs from here
        health.mqtt_connected = False
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); paho reconnects", reason)
            health.failure("mqtt", f"disconnected: {reason}")

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # not acknowledged: the broker resends it to the next session
        try:
            try:
                topic = msg.topic  # paho decodes it: a topic that is not UTF-8 raises here
            except UnicodeDecodeError:
                topic = ""  # not a data topic: counted as malformed
            self.tracker.receive(topic, msg.payload, msg.mid, msg.qos)
        except Exception:
            # Last resort (receive guards itself and holds the acknowledgement in a finally):
            # nothing may leave this callback and kill paho's network thread.
            log.exception("message %d could not be handled: counted and dropped", msg.mid)
            with contextlib.suppress(Exception):
                self.tracker.count_error()
