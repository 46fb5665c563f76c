"""Prometheus metrics of the collector, built per scrape from the live stats (docs/metrics-collector.md).

Base units, `_total` only on counters, freshness as `_last_*_timestamp_seconds`, no sample
timestamps; city and site labels are added by Prometheus from its target list.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from hazmon.collector.clock import ClockReader
from hazmon.collector.queue import DurableQueue
from hazmon.collector.stats import Stats
from hazmon.collector.uplink import IGNORED_REASONS

P = "hazmon_collector_"
ERROR_KINDS = ("connect", "timeout", "exception_response", "bad_status", "decode", "internal")
DROP_REASONS = ("queue_full", "not_finite", "queue_error")


def _version() -> str:
    try:
        return version("hazmon")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


class CollectorMetrics:
    """A custom collector: nothing is kept between scrapes but the stats it reads."""

    def __init__(
        self, gateway: str, stats: Stats, queue: DurableQueue, clock: ClockReader
    ) -> None:
        self.gateway = gateway
        self.stats = stats
        self.queue = queue
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from self._build()
        yield from self._sources()
        yield from self._data()
        yield from self._uplink()
        yield from self._clock()

    def _build(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(P + "build_info", "Version of hazmon-collector and the gateway it serves.",
                                 labels=["version", "gateway"])
        info.add_metric([_version(), self.gateway], 1)
        yield info

    def _sources(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(P + "source_up", "1 if the last poll of the source succeeded.",
                               labels=["source", "protocol"])
        last = GaugeMetricFamily(P + "source_last_poll_success_timestamp_seconds",
                                 "Unix time of the last poll that read every due tag of the source.",
                                 labels=["source"])
        dur = SummaryMetricFamily(P + "source_poll_duration_seconds", "Time taken by the polls of a source.",
                                  labels=["source"])
        polls = CounterMetricFamily(P + "source_polls", "Polls completed.", labels=["source"])
        overruns = CounterMetricFamily(P + "source_poll_overruns",
                                       "Poll ticks skipped because a poll took longer than the interval.",
                                       labels=["source"])
        connects = CounterMetricFamily(P + "source_connects", "Successful connections to the source.",
                                       labels=["source"])
        errors = CounterMetricFamily(P + "source_errors", "Errors by kind.", labels=["source", "kind"])
        read = CounterMetricFamily(P + "samples_read", "Samples read from the source.", labels=["source"])
        for s in self.stats.sources.values():
            up.add_metric([s.name, s.protocol], 1 if s.up else 0)
            if s.last_success is not None:
                last.add_metric([s.name], s.last_success)
            dur.add_metric([s.name], s.polls, s.poll_seconds_sum)
            polls.add_metric([s.name], s.polls)
            overruns.add_metric([s.name], s.overruns)
            connects.add_metric([s.name], s.connects)
            for kind in sorted(set(ERROR_KINDS) | set(s.errors)):
                errors.add_metric([s.name, kind], s.errors[kind])
            read.add_metric([s.name], s.samples_read)
        yield from (up, last, dur, polls, overruns, connects, errors, read)

    def _data(self) -> Iterator[Metric]:
        q = self.stats.queue
        queued = CounterMetricFamily(P + "samples_queued", "Samples committed to the durable queue.")
        queued.add_metric([], q.samples_queued)
        dropped = CounterMetricFamily(P + "samples_dropped", "Samples dropped, by reason.", labels=["reason"])
        for reason in sorted(set(DROP_REASONS) | set(q.dropped)):
            dropped.add_metric([reason], q.dropped[reason])
        published = CounterMetricFamily(P + "samples_published",
                                        "Samples acknowledged by the broker (PUBACK).")
        published.add_metric([], self.stats.uplink.samples_published)
        depth = GaugeMetricFamily(P + "queue_samples",
                                  "Samples held in the durable queue (not yet confirmed by the province).")
        depth.add_metric([], self.queue.depth_samples)
        batches = GaugeMetricFamily(P + "queue_batches",
                                    "Batches held in the durable queue (not yet confirmed by the province).")
        batches.add_metric([], self.queue.depth_batches)
        age = GaugeMetricFamily(P + "queue_oldest_sample_age_seconds",
                                "Age of the oldest sample still held in the queue (0 when empty).")
        oldest = self.queue.oldest_ts()
        age.add_metric([], 0.0 if oldest is None else max(0.0, time.time() - oldest))
        seq = GaugeMetricFamily(P + "last_sequence", "Seq of the last batch written to the queue.")
        seq.add_metric([], self.queue.last_seq)
        corrupt = GaugeMetricFamily(P + "queue_corrupt_files",
                                    "Corrupt queue databases moved aside and kept beside the queue.")
        corrupt.add_metric([], self.queue.corrupt_files())
        aside = CounterMetricFamily(P + "queue_moved_aside",
                                    "Corrupt queue databases this process moved aside at start.")
        aside.add_metric([], self.stats.queue.moved_aside)
        yield from (queued, dropped, published, depth, batches, age, seq, corrupt, aside)

    def _uplink(self) -> Iterator[Metric]:
        u = self.stats.uplink
        conn = GaugeMetricFamily(P + "uplink_connected", "1 while connected to the MQTT broker.")
        conn.add_metric([], 1 if u.connected else 0)
        connects = CounterMetricFamily(P + "uplink_connects", "Successful connections to the broker.")
        connects.add_metric([], u.connects)
        refusals = CounterMetricFamily(P + "uplink_refusals",
                                       "Connections the broker refused (bad credentials, not authorised).")
        refusals.add_metric([], u.refusals)
        sent = CounterMetricFamily(P + "batches_sent", "Batches handed to MQTT, replays included.")
        sent.add_metric([], u.batches_sent)
        pub = CounterMetricFamily(P + "batches_published", "Batches acknowledged by the broker (PUBACK).")
        pub.add_metric([], u.batches_published)
        replayed = CounterMetricFamily(P + "batches_replayed", "Backlog batches sent after an outage.")
        replayed.add_metric([], u.replayed_batches)
        inflight = GaugeMetricFamily(P + "uplink_inflight_batches", "Batches sent and not yet acknowledged.")
        inflight.add_metric([], u.inflight)
        yield from (conn, connects, refusals, sent, pub, replayed, inflight)
        if u.last_ack is not None:
            ack = GaugeMetricFamily(P + "uplink_last_ack_timestamp_seconds",
                                    "Unix time of the last PUBACK from the broker.")
            ack.add_metric([], u.last_ack)
            yield ack
        yield from self._custody()

    def _custody(self) -> Iterator[Metric]:
        u = self.stats.uplink
        sub = GaugeMetricFamily(P + "uplink_ack_subscribed",
                                "1 while subscribed to the gateway's ack topic (the province's committed seqs).")
        sub.add_metric([], 1 if u.ack_subscribed else 0)
        unconfirmed = GaugeMetricFamily(P + "queue_unconfirmed_batches",
                                        "Batches delivered to the broker (PUBACK) and not yet confirmed "
                                        "committed by the province.")
        unconfirmed.add_metric([], u.unconfirmed)
        batches = CounterMetricFamily(P + "batches_confirmed",
                                      "Batches deleted from the queue because the province committed them.")
        batches.add_metric([], u.batches_confirmed)
        samples = CounterMetricFamily(P + "samples_confirmed",
                                      "Samples deleted from the queue because the province committed them.")
        samples.add_metric([], u.samples_confirmed)
        resent = CounterMetricFamily(P + "batches_resent",
                                     "Delivered batches sent again because the province committed later ones "
                                     "and not them (the broker lost them).")
        resent.add_metric([], u.resent_batches)
        ignored = CounterMetricFamily(P + "committed_ignored",
                                      "Committed-seqs messages ignored, by reason.", labels=["reason"])
        for reason in sorted(set(IGNORED_REASONS) | set(u.committed_ignored)):
            ignored.add_metric([reason], u.committed_ignored[reason])
        yield from (sub, unconfirmed, batches, samples, resent, ignored)
        if u.last_committed is not None:
            last = GaugeMetricFamily(P + "last_committed_timestamp_seconds",
                                     "When the province committed what its last message for this queue "
                                     "epoch confirms (Unix time, tracker clock).")
            last.add_metric([], u.last_committed)
            yield last

    def _clock(self) -> Iterator[Metric]:
        c = self.stats.clock
        state = self.clock()
        readable = GaugeMetricFamily(P + "clock_readable",
                                     "1 if the kernel's clock state can be read (adjtimex); 0: synchronisation "
                                     "is unknown.")
        readable.add_metric([], 0 if state is None else 1)
        yield readable
        waited = GaugeMetricFamily(P + "clock_sync_wait_seconds",
                                   "How long the start waited for the clock to be synchronised before polling.")
        waited.add_metric([], c.sync_wait_seconds)
        yield waited
        if c.started_unsynced is not None:
            unsynced = GaugeMetricFamily(P + "clock_started_unsynced",
                                         "1 if polling started while the clock was not synchronised "
                                         "(the wait at start gave up, or was not allowed).")
            unsynced.add_metric([], 1 if c.started_unsynced else 0)
            yield unsynced
        if state is None:
            return
        synced = GaugeMetricFamily(P + "clock_synced", "1 if the kernel reports the clock NTP-synchronised.")
        synced.add_metric([], 1 if state.synced else 0)
        maxerr = GaugeMetricFamily(P + "clock_max_error_seconds", "Kernel's maximum clock error bound.")
        maxerr.add_metric([], state.max_error_seconds)
        esterr = GaugeMetricFamily(P + "clock_estimated_error_seconds", "Kernel's estimated clock error.")
        esterr.add_metric([], state.estimated_error_seconds)
        yield from (synced, maxerr, esterr)
        if state.offset_seconds is not None:
            off = GaugeMetricFamily(P + "clock_offset_seconds", "Offset the kernel PLL is correcting.")
            off.add_metric([], state.offset_seconds)
            yield off


def make_registry(metrics: CollectorMetrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry


def serve(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """Serve /metrics in a daemon thread; returns the server (its port, and shutdown())."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
