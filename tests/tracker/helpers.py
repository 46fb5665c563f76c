"""Test helpers: a gateway stand-in publishing wire batches, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hazmon.testing.procs import Mosquitto
from hazmon.wire import Batch, Sample, topic


class Publisher:
    """A gateway stand-in: publishes wire batches with QoS 1 and waits for the broker's PUBACK."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-gateway")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def batch(self, gw: str, seq: int, samples: dict[str, float], ts: float, source: str = "dcs",
              city: str = "5101") -> None:
        b = Batch(gw, seq, source, tuple(Sample(t, ts, v) for t, v in samples.items()), sent=time.time())
        self.raw(topic(city, gw, source), b.encode())

    def raw(self, topic_name: str, payload: bytes) -> None:
        self.client.publish(topic_name, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    if check():
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
