"""Test helpers: a gateway stand-in publishing wire batches, the real tracker process, HTTP, polling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hazmon.testing.procs import Mosquitto, free_port, stop, wait_port
from hazmon.wire import Batch, Sample, topic
from tracker.inventory import LAB_CODE

TRACKER = Path(sys.executable).with_name("hazmon-tracker")
# The JSON API's bearer token in these tests (the vault's in a real deployment).
TOKEN = "test-api-token-0123456789abcdef"
GOOD = {"LT-101": 10.0, "TT-101": 25.0, "PT-101": 0.5, "FT-101": 100.0,
        "TT-201": 200.0, "PT-201": 4.0, "GT-101": 0.0, "GT-201": 0.0}
N = len(GOOD)


class Publisher:
    """A gateway stand-in: publishes wire batches with QoS 1 and waits for the broker's PUBACK."""

    def __init__(self, broker: Mosquitto, client_id: str = "test-gateway") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def batch(self, gw: str, seq: int, samples: dict[str, float], ts: float, source: str = "dcs",
              city: str = "5101", epoch: int = 0) -> None:
        b = Batch(gw, seq, source, tuple(Sample(t, ts, v) for t, v in samples.items()), sent=time.time(),
                  epoch=epoch)
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


# ------------------------------------------------------------------ HTTP


def get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    """GET from the tracker on loopback; the bearer token goes with /api/ requests (None: without)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None and path.startswith("/api/"):
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(port: int, path: str) -> dict:
    status, body = get(port, path)
    assert status == 200, body
    return json.loads(body)


def metric(port: int, name: str, **labels: str) -> float | None:
    """One sample of /metrics by name and labels (exact match, labels in sorted order), None when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    key = f"{name}{{{want}}}" if want else name
    for line in get(port, "/metrics")[1].decode().splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def source_counts(port: int) -> tuple[float | None, float | None]:
    labels = {"enterprise": LAB_CODE, "source": "dcs"}
    return (metric(port, "hazmon_tracker_samples_accepted_total", **labels),
            metric(port, "hazmon_tracker_samples_duplicate_total", **labels))


def write_token(path: Path, token: str = TOKEN) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return path


# ------------------------------------------------------------------ the real program


class TrackerProcess:
    """The real `hazmon-tracker` console script, stopped by its PID."""

    def __init__(self, inventory: Path, state: Path, broker: Mosquitto, log: Path, api_token: bool = True) -> None:
        self.port = free_port()
        self.state = state
        self.args = [str(TRACKER), "--inventory", str(inventory), "--state", str(state),
                     "--broker-host", broker.host, "--broker-port", str(broker.port),
                     "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
                     "--client-id", "tracker-under-test", "--evaluate-every", "0.2"]
        if api_token:
            self.args += ["--api-token-file", str(write_token(log.parent / "secrets" / "api.token"))]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, settings: Path | None = None) -> None:
        extra = ["--settings", str(settings)] if settings else []
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*self.args, *extra], stdout=out, stderr=subprocess.STDOUT)
        wait_port("127.0.0.1", self.port, timeout=30)
        wait_for(lambda: metric(self.port, "hazmon_tracker_mqtt_connected") == 1, timeout=30,
                 what="tracker on the broker")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=20)
            assert self.proc.returncode == 0, self.log.read_text()

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
