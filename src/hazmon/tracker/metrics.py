"""Prometheus exposition: a custom collector that builds every family per scrape.

Cardinality is bounded by the inventory: labels are enterprise (its code) and source, never a
tag; per-tag detail is on the JSON API. City and region come from Prometheus's target labels or
the `hazmon_tracker_enterprise_info` join, not from every series. Names: docs/metrics-tracker.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hazmon.tracker.evaluate import ALARM_LEVELS, Evaluation
from hazmon.tracker.service import MALFORMED_REASONS, MESSAGE_ERRORS, Tracker

P = "hazmon_tracker_"
ES = ["enterprise", "source"]

# (metric suffix, SourceState attribute, help) for per-source counters.
_SOURCE_COUNTERS = (
    ("samples_accepted", "accepted", "Samples kept (first delivery of their batch)."),
    ("samples_duplicate", "duplicates", "Samples of batches already seen, by (gateway, epoch, seq): dropped."),
    ("batches_duplicate", "duplicate_batches", "Batches already seen, by (gateway, epoch, seq): dropped."),
    ("samples_out_of_range", "out_of_range_samples", "Accepted samples outside the instrument range."),
    ("rate_violations", "rate_violations", "Sample-to-sample changes faster than plausible (真实性)."),
    ("alarm_crossings", "alarm_crossings", "Times a tag entered an alarm level (set point crossed)."),
    ("samples_unknown_tag", "unknown_tag_samples", "Samples of tags the inventory does not list: dropped."),
)

_REJECT_REASONS = {
    **{f"malformed_{reason}": ("messages_malformed", reason) for reason in MALFORMED_REASONS},
    "rejected_unknown_enterprise": ("samples_rejected", "unknown_enterprise"),
    "rejected_unknown_source": ("samples_rejected", "unknown_source"),
}


class TrackerCollector(Collector):
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterator[Metric]:
        t = self.tracker
        ev = t.evaluation
        with t.lock:
            sources = [
                (key, src.spec.expected, src.last_sample_ts, src.last_receive_ts,
                 [getattr(src, attr) for _, attr, _ in _SOURCE_COUNTERS])
                for key, src in t.state.sources.items()
            ]
            counters = dict(t.state.counters)
            # Gaps and missing batches of the current epoch only: an old queue's are gone with it.
            gateways = [(gw, s.current.gaps, s.current.missing, s.abandoned, s.epoch_changes,
                         t.state.future_samples[gw]) for gw, s in t.state.gateways.items()]
            unacked = t.unacked
            tracked = sum(len(src.tags) for src in t.state.sources.values())
        ents = t.state.enterprises

        info = _gauge("enterprise_info", "Enterprises the inventory lists (value 1).",
                      ["enterprise", "city", "state", "expected"])
        for e in ents.values():
            info.add_metric([e.code, e.city, e.state, str(e.expected).lower()], 1)
        yield info

        expected = _gauge("source_expected", "1: must deliver; 0: plant in long-term shutdown (R4).")
        last_sample = _gauge("source_last_sample_timestamp_seconds",
                             "Sample time (gateway clock) of the newest sample of the source.")
        last_receive = _gauge("source_last_receive_timestamp_seconds",
                              "When the tracker last received a batch of the source (tracker clock).")
        counter_fams = [CounterMetricFamily(P + name, text, labels=ES) for name, _, text in _SOURCE_COUNTERS]
        for key, exp, ts, rx, values in sources:
            labels = list(key)
            expected.add_metric(labels, 1 if exp else 0)
            if ts != float("-inf"):
                last_sample.add_metric(labels, ts)
            if rx != float("-inf"):
                last_receive.add_metric(labels, rx)
            for fam, value in zip(counter_fams, values, strict=True):
                fam.add_metric(labels, value)
        yield expected
        yield last_sample
        yield last_receive
        yield from counter_fams
        yield from _evaluated(ev)

        fams = {
            "messages_malformed": CounterMetricFamily(
                P + "messages_malformed", "MQTT messages dropped as not wire-schema v1, by reason "
                "(acknowledged once their count is committed).", labels=["reason"]),
            "samples_rejected": CounterMetricFamily(
                P + "samples_rejected", "Samples dropped: the inventory does not know their sender.",
                labels=["reason"]),
        }
        for key, (fam, reason) in _REJECT_REASONS.items():
            fams[fam].add_metric([reason], counters.get(key, 0))
        yield from fams.values()
        yield _counter("message_errors", "MQTT messages whose handling raised an unexpected error (logged with "
                       "its traceback): dropped, acknowledged.", counters.get(MESSAGE_ERRORS, 0))

        gw = ["gateway"]
        gaps = _gauge("gateway_seq_gaps", "Gaps in the seqs seen from a gateway's current queue epoch.", gw)
        missing = _gauge("gateway_missing_batches",
                         "Batches between a gateway's lowest and highest seen seq (current queue epoch), "
                         "not received yet.", gw)
        abandoned = CounterMetricFamily(P + "gateway_abandoned_batches",
                                        "Missing batches given up: the gateway had too many gaps.", labels=gw)
        epochs = CounterMetricFamily(P + "gateway_epoch_changes",
                                     "Times a gateway's batches came from a new queue (re-imaged, replaced or "
                                     "reset: its seqs start again).", labels=gw)
        future = CounterMetricFamily(P + "gateway_future_samples",
                                     "Samples refused: stamped more than max_future_skew_seconds ahead of the "
                                     "tracker's clock (the gateway's clock is wrong).", labels=gw)
        for code, n_gaps, n_missing, n_abandoned, n_epochs, n_future in gateways:
            gaps.add_metric([code], n_gaps)
            missing.add_metric([code], n_missing)
            abandoned.add_metric([code], n_abandoned)
            epochs.add_metric([code], n_epochs)
            future.add_metric([code], n_future)
        yield from (gaps, missing, abandoned, epochs, future)

        yield _value("tracked_tags", "Tags with at least one sample in the state.", tracked)
        yield _value("mqtt_connected", "1 while connected and subscribed to the broker, and the MQTT network "
                     "thread runs.", 1 if t.health.connected() else 0)
        if t.health.last_flush_ts != float("-inf"):
            yield _value("last_flush_timestamp_seconds", "When the state was last committed to disk.",
                         t.health.last_flush_ts)
        yield _counter("flush_failures", "Commits of the state that failed (rolled back, tried again with backoff).",
                       t.flush_failures)
        yield _value("unacked_messages", "Messages received and not yet acknowledged: waiting for a commit.", unacked)
        yield _counter("committed_published", "Committed messages (custody) published to the gateways.",
                       t.committed_published)
        yield from _loops(t)
        yield _value("last_evaluation_timestamp_seconds", "When the flags were last computed.", ev.at)
        yield _value("evaluation_duration_seconds", "How long the last evaluation took.", ev.duration)


def _loops(t: Tracker) -> Iterator[Metric]:
    """The same judgement as /healthz, per loop (mqtt, flush, evaluation: those started)."""
    loop = ["loop"]
    up = _gauge("loop_up", "1 while the loop's thread runs and it succeeded within its stale bound (/healthz).", loop)
    last = _gauge("loop_last_success_timestamp_seconds", "When the loop last succeeded.", loop)
    bound = _gauge("loop_stale_seconds", "How long the loop may go without a success before it is stale.", loop)
    errors = CounterMetricFamily(P + "loop_errors", "Unexpected exceptions caught in the loop (it went on).",
                                 labels=loop)
    for s in t.health.status():
        up.add_metric([s.name], 1 if s.healthy else 0)
        if s.last_success != float("-inf"):
            last.add_metric([s.name], s.last_success)
        bound.add_metric([s.name], s.stale_after)
        errors.add_metric([s.name], t.health.errors.get(s.name, 0))
    yield from (up, last, bound, errors)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, text, value=value)


def _gauge(name: str, text: str, labels: list[str] = ES) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, text, labels=labels)


def _value(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, text, value=value)


def _evaluated(ev: Evaluation) -> Iterator[Metric]:
    stalled = _gauge("source_stalled", "1 if an expected source's newest sample is older than its window.")
    expected_tags = _gauge("source_expected_tags", "Tags the inventory lists for the source.")
    fresh = _gauge("source_fresh_tags", "Tags with a sample within their window (max(k x interval, min)).")
    completeness = _gauge("source_completeness_ratio",
                          "Share of the listed tags delivered within their window (完整性, D7).")
    flat = _gauge("source_tags_flatlined", "Analog tags whose value has not changed for too long (D7).")
    oor = _gauge("source_tags_out_of_range", "Tags whose last value is outside the instrument range (D7).")
    rate = _gauge("source_tags_rate_violation", "Tags with an implausible rate of change recently (D7).")
    alarm = _gauge("source_tags_in_alarm", "Tags whose last value crosses an alarm set point.",
                   [*ES, "level"])
    for (ent, src), se in ev.sources.items():
        labels = [ent, src]
        stalled.add_metric(labels, 1 if se.stalled else 0)
        expected_tags.add_metric(labels, se.expected_tags)
        fresh.add_metric(labels, se.fresh_tags)
        if se.expected:
            completeness.add_metric(labels, se.completeness)
        flat.add_metric(labels, se.flatlined)
        oor.add_metric(labels, se.out_of_range)
        rate.add_metric(labels, se.rate_violation)
        for level in ALARM_LEVELS:
            alarm.add_metric([*labels, level], se.in_alarm[level])
    yield from (stalled, expected_tags, fresh, completeness, flat, oor, rate, alarm)
