"""The collector service: pollers -> durable queue -> MQTT uplink, plus /metrics."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from hazmon.collector.clock import ClockState, read_clock
from hazmon.collector.config import CollectorConfig
from hazmon.collector.metrics import CollectorMetrics, make_registry, serve
from hazmon.collector.queue import DurableQueue, finite
from hazmon.collector.sources import SampleT, make_poller
from hazmon.collector.stats import SourceStats, Stats
from hazmon.collector.uplink import Uplink

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, cfg: CollectorConfig, clock: Callable[[], ClockState | None] = read_clock) -> None:
        self.cfg = cfg
        self.stats = Stats({s.name: SourceStats(s.name, s.protocol.value) for s in cfg.sources})
        self.queue = DurableQueue(cfg.queue.path, cfg.queue.max_samples, cfg.queue.synchronous)
        self.uplink = Uplink(cfg, self.queue, self.stats.uplink)
        self.metrics = CollectorMetrics(cfg.gateway, self.stats, self.queue, clock)
        self.registry = make_registry(self.metrics)
        self.http: WSGIServer | None = None

    @property
    def metrics_port(self) -> int:
        assert self.http is not None
        return self.http.server_port

    async def enqueue(self, source: str, samples: list[SampleT]) -> None:
        good, bad = finite(samples)
        if bad:
            self.stats.queue.dropped["not_finite"] += bad
            log.warning("source %s: %d value(s) are NaN or infinite (not sent)", source, bad)
        if not good:
            return
        # SQLite commits (fsync) run off the event loop so that no source's cadence waits on disk.
        try:
            put = await asyncio.to_thread(self.queue.put, source, good)
        except sqlite3.Error as exc:
            # Disk full or broken: the samples cannot be kept; count them, keep polling.
            self.stats.queue.dropped["queue_error"] += len(good)
            log.error("queue %s: cannot write %d sample(s) of %s: %s", self.cfg.queue.path, len(good), source, exc)
            return
        self.stats.queue.samples_queued += len(good)
        if put.dropped:
            self.stats.queue.dropped["queue_full"] += put.dropped
            log.warning("queue full (%d samples): dropped the oldest %d samples", self.cfg.queue.max_samples,
                        put.dropped)
        self.uplink.notify()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then stop polling, flush what the broker will take, and close."""
        self.http = serve(self.registry, self.cfg.metrics.host, self.cfg.metrics.port)
        log.info("gateway %s: %d source(s), metrics on %s:%d, queue %s (epoch %d) holds %d sample(s)",
                 self.cfg.gateway, len(self.cfg.sources), self.cfg.metrics.host, self.metrics_port,
                 self.cfg.queue.path, self.queue.epoch, self.queue.depth_samples)
        self.uplink.start()
        pollers = [make_poller(s, self.cfg.backoff, self.enqueue, self.stats.sources[s.name])
                   for s in self.cfg.sources]
        tasks = [asyncio.create_task(p.run(), name=f"source-{p.cfg.name}") for p in pollers]
        try:
            await stop.wait()
        finally:
            log.info("stopping: %d sample(s) queued", self.queue.depth_samples)
            for p in pollers:
                p.stop()
            # Let a tick in progress finish so that every read the slave served reaches the queue.
            grace = max(s.timeout for s in self.cfg.sources) * 2 + 1
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(self.uplink.stop, self.cfg.queue.flush_timeout)
            self.queue.close()
            self.http.shutdown()
            self.http.server_close()
            log.info("stopped")
