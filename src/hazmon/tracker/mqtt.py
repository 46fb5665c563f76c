"""The tracker's MQTT side: a persistent QoS 1 session, acknowledged only after a durable commit.

clean_session=False with a fixed client id: the broker queues QoS 1 messages while the tracker is
down and delivers them when it returns. manual_ack: a PUBACK leaves only after the flush that
holds the message has committed, so a crash between receipt and commit makes the broker resend
it (and the dedup state, committed with the values, drops what was already kept).
"""

from __future__ import annotations

import logging
import ssl
import threading
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
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=False, manual_ack=True
        )
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(ca_certs=str(config.ca_file) if config.ca_file else None,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self.client = client
        tracker.acker = self._ack

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what was taken, then disconnect."""
        self._stopping.set()
        self.tracker.flush()
        self.client.disconnect()
        self.client.loop_stop()

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        for mid, qos in acks:
            self.client.ack(mid, qos)

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
        self.subscribed.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason, _props) -> None:
        self.tracker.health.mqtt_connected = False
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); paho reconnects", reason)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # not acknowledged: the broker resends it to the next session
        self.tracker.receive(msg.topic, msg.payload, msg.mid, msg.qos)
