"""The in-process collector harness of the collector's tests (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from hazmon.collector.clock import ClockState
from hazmon.collector.config import CollectorConfig, parse_config
from hazmon.collector.service import Collector

GATEWAY = "91510100MALABE0001"
CITY = "5101"


def synced_clock() -> ClockState:
    """The clock reader the in-process collectors get: this machine's own clock is not always
    synchronised (a container), and the start would then wait clock.sync_wait for it."""
    return ClockState(synced=True, max_error_seconds=0.001, estimated_error_seconds=0.0005, offset_seconds=None)


def base_config(tmp: Path, mqtt_port: int, sources: list[dict], clock: dict | None = None,
                mqtt: dict | None = None, **queue) -> CollectorConfig:
    data = {
        "gateway": GATEWAY,
        "city": CITY,
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive": 5, **(mqtt or {})},
        "queue": {"path": str(tmp / "queue.db"), "synchronous": "NORMAL", **queue},
        "metrics": {"port": 0},
        "backoff": {"initial": 0.2, "maximum": 1.0, "jitter": 0.2},
        "sources": sources,
    }
    if clock is not None:
        data["clock"] = clock
    return parse_config(data)


class Running:
    """A Collector run in its own thread and loop, as the service runs it."""

    def __init__(self, cfg: CollectorConfig, clock: Callable[[], ClockState | None] = synced_clock) -> None:
        self.collector = Collector(cfg, clock=clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("collector did not start")

    def _main(self) -> None:
        async def go():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._loop.call_soon(self._ready.set)
            await self.collector.run(self._stop)

        try:
            asyncio.run(go())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self.thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)
        assert not self.thread.is_alive(), "collector did not stop"
        if self.error is not None:
            raise self.error
