"""Start a real program on loopback for a test, and stop exactly that process by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Stop one process we started, by its PID: TERM, then KILL."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@dataclass
class Mosquitto:
    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n"
            f"log_dest file {self.workdir / 'mosquitto.log'}\n"
            # Broker-side queues must not be the thing that saves data (STYLE.md): keep defaults
            # small and visible, the collector's own queue is what guarantees delivery.
            "max_queued_messages 1000\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.host, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def mosquitto(workdir: Path, host: str = "127.0.0.1", port: int | None = None) -> Iterator[Mosquitto]:
    broker = Mosquitto(host, port or free_port(host), workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
