"""The collector service: pollers -> durable queue -> MQTT uplink, plus /metrics.

Start order: metrics and the uplink first (a backlog from before a restart goes out at once and
Prometheus sees the collector), then a bounded wait for clock synchronisation (clock.sync_wait),
then the pollers.

A full disk: the queue cannot take new samples; each tick's samples are counted as dropped
(`queue_error`, alerted) and polling goes on; everything already queued stays queued and is
sent as usual; writes work again as soon as space returns (a deletion of committed batches
frees pages inside the database too), with no restart. docs/wire.md says the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from wsgiref.simple_server import WSGIServer

from hazmon.collector.clock import ClockReader, read_clock, unreadable_reason, wait_for_sync
from hazmon.collector.config import CollectorConfig
from hazmon.collector.metrics import CollectorMetrics, make_registry, serve
from hazmon.collector.queue import finite, open_queue
from hazmon.collector.sources import SampleT, make_poller
from hazmon.collector.stats import SourceStats, Stats
from hazmon.collector.uplink import Uplink
from hazmon.collector.wireformat import samples_budget

log = logging.getLogger(__name__)

QUEUE_ERROR_LOG_SECONDS = 60.0
CLOCK_CHECK_SECONDS = 60.0  # how often a running collector looks at its clock's state (for the log)


class Collector:
    def __init__(self, cfg: CollectorConfig, clock: ClockReader = read_clock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.stats = Stats({s.name: SourceStats(s.name, s.protocol.value) for s in cfg.sources})
        self.queue, aside = open_queue(cfg.queue.path, cfg.queue.max_samples, cfg.queue.synchronous,
                                       samples_budget(cfg.gateway, [s.name for s in cfg.sources]))
        if aside is not None:
            self.stats.queue.moved_aside += 1
        self.uplink = Uplink(cfg, self.queue, self.stats.uplink)
        self.metrics = CollectorMetrics(cfg.gateway, self.stats, self.queue, clock)
        self.registry = make_registry(self.metrics)
        self.http: WSGIServer | None = None
        self._queue_failing: float | None = None  # monotonic time of the last queue_error log line

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
            # Disk full or broken: the samples cannot be kept; count them, keep polling. The
            # queue rolled the write back, so the next tick tries afresh.
            self.stats.queue.dropped["queue_error"] += len(good)
            now = time.monotonic()
            if self._queue_failing is None or now - self._queue_failing >= QUEUE_ERROR_LOG_SECONDS:
                # Once a minute, not once a tick: a full disk must not also flood the journal.
                log.error("queue %s: cannot write %d sample(s) of %s: %s (%d sample(s) dropped so far)",
                          self.cfg.queue.path, len(good), source, exc, self.stats.queue.dropped["queue_error"])
                self._queue_failing = now
            return
        if self._queue_failing is not None:
            log.warning("queue %s: writing works again (%d sample(s) dropped as queue_error in all)",
                        self.cfg.queue.path, self.stats.queue.dropped["queue_error"])
            self._queue_failing = None
        self.stats.queue.samples_queued += len(good)
        if put.dropped:
            self.stats.queue.dropped["queue_full"] += put.dropped
            log.warning("queue full (%d samples): dropped the oldest %d samples", self.cfg.queue.max_samples,
                        put.dropped)
        self.uplink.notify()

    async def _wait_for_clock(self, stop: asyncio.Event) -> None:
        waited = await wait_for_sync(self.clock, self.cfg.clock.sync_wait, stop)
        self.stats.clock.readable = waited.synced is not None
        self.stats.clock.sync_wait_seconds = waited.waited
        self.stats.clock.started_unsynced = waited.synced is False

    async def _watch_clock(self, stop: asyncio.Event, synced: bool | None) -> None:
        """Say in the log when the clock loses or regains synchronisation (the metrics say it always)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CLOCK_CHECK_SECONDS)
            state = self.clock()
            now = None if state is None else state.synced
            if now == synced:
                continue
            if now is None:
                log.warning("cannot read the clock's state any more: %s", unreadable_reason())
            elif now:
                log.info("the clock is synchronised again")
            else:
                log.error("the clock is no longer synchronised (kernel max error %.3f s): samples are stamped "
                          "with an unsynchronised clock", state.max_error_seconds if state else 0.0)
            synced = now

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then stop polling, flush what the broker will take, and close."""
        self.http = serve(self.registry, self.cfg.metrics.host, self.cfg.metrics.port)
        log.info("gateway %s: %d source(s), metrics on %s:%d, queue %s (epoch %d) holds %d sample(s), "
                 "batches deleted on %s", self.cfg.gateway, len(self.cfg.sources), self.cfg.metrics.host,
                 self.metrics_port, self.cfg.queue.path, self.queue.epoch, self.queue.depth_samples,
                 self.cfg.queue.delete_on)
        self.uplink.start()
        tasks: list[asyncio.Task] = []
        pollers = []
        try:
            await self._wait_for_clock(stop)
            if not stop.is_set():
                pollers = [make_poller(s, self.cfg.backoff, self.enqueue, self.stats.sources[s.name])
                           for s in self.cfg.sources]
                tasks = [asyncio.create_task(p.run(), name=f"source-{p.cfg.name}") for p in pollers]
                synced = None if not self.stats.clock.readable else not self.stats.clock.started_unsynced
                watch = asyncio.create_task(self._watch_clock(stop, synced), name="clock")
                await stop.wait()
                await watch
        finally:
            log.info("stopping: %d sample(s) queued", self.queue.depth_samples)
            for p in pollers:
                p.stop()
            if tasks:
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
