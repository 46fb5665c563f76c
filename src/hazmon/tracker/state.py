"""The tracker's memory: every tag's last value, per-source counters, per-gateway seen seqs.

Duplicates are dropped by (gateway, queue epoch, seq): a re-imaged gateway's queue numbers from 1
again under a new epoch, and its batches must not be taken for copies of the old queue's.

`FeedState.ingest` is the hot path (decode is done before it, outside the service's lock): keep
it free of allocations beyond what a sample needs. Nothing here locks or does I/O (but for a log
line on a new queue epoch, a rare event); the service serialises access and the store persists
what `take_dirty` hands it.

Time: a sample stamped more than `max_future_skew` ahead of the tracker's clock is refused and
counted per gateway, the rest of its batch kept. Taken as the tag's value, it would make every
real sample after it look like a late replay until the clock caught up: the tag would stay
"fresh" on a stale value and a high-high alarm in the real samples would never show.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from hazmon.tracker.expected import ExpectedEnterprise, ExpectedSource, ExpectedTag
from hazmon.tracker.seqs import GatewaySeqs
from hazmon.wire import Batch

log = logging.getLogger(__name__)


class Outcome(Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNKNOWN_ENTERPRISE = "unknown_enterprise"
    UNKNOWN_SOURCE = "unknown_source"


@dataclass(slots=True, eq=False)
class TagState:
    spec: ExpectedTag
    ts: float = float("-inf")  # sample time of the newest sample; -inf: none yet
    value: float = float("nan")
    change_ts: float = float("-inf")  # sample time since which `value` has not changed
    rate_violation_ts: float = float("-inf")  # sample time of the last impossible jump
    alarm: str = ""

    @property
    def seen(self) -> bool:
        return self.ts != float("-inf")


@dataclass(slots=True, eq=False)
class SourceState:
    spec: ExpectedSource
    tags: dict[str, TagState] = field(default_factory=dict)
    accepted: int = 0
    duplicates: int = 0
    duplicate_batches: int = 0
    out_of_range_samples: int = 0
    rate_violations: int = 0
    alarm_crossings: int = 0
    unknown_tag_samples: int = 0
    last_sample_ts: float = float("-inf")
    last_receive_ts: float = float("-inf")


@dataclass
class Dirty:
    """What changed since the last flush, as plain rows for the store."""

    tags: list[tuple[str, str, str, float, float, float, float]]
    sources: list[tuple]
    # (gateway, *GatewaySeqs.to_row(), future samples): the row of the gateways table
    gateways: list[tuple[str, str, int, int, str, int]]
    counters: list[tuple[str, int]]

    @property
    def rows(self) -> int:
        return len(self.tags) + len(self.sources) + len(self.gateways) + len(self.counters)

    def merged(self, newer: Dirty) -> Dirty:
        """This (a flush that failed to commit) and what changed since: the newer row of a key wins."""
        def by_key(old: list, new: list, width: int) -> list:
            return list({r[:width]: r for r in (*old, *new)}.values())

        return Dirty(by_key(self.tags, newer.tags, 3), by_key(self.sources, newer.sources, 2),
                     by_key(self.gateways, newer.gateways, 1), by_key(self.counters, newer.counters, 1))


class FeedState:
    def __init__(self, enterprises: dict[str, ExpectedEnterprise], max_seq_gaps: int = 1000,
                 max_future_skew: float = 10.0) -> None:
        self.enterprises = enterprises
        self.max_future_skew = max_future_skew
        # Samples refused per gateway for a time stamp ahead of the tracker's clock (persisted
        # with the gateway's row).
        self.future_samples: Counter[str] = Counter()
        self.sources: dict[tuple[str, str], SourceState] = {
            (e.code, s.name): SourceState(s) for e in enterprises.values() for s in e.sources.values()
        }
        self.gateways: dict[str, GatewaySeqs] = {}
        self.max_seq_gaps = max_seq_gaps
        # Rejected samples and malformed messages, by reason: a few fixed keys, no enterprise.
        self.counters: Counter[str] = Counter()
        self._dirty_tags: dict[tuple[str, str, str], TagState] = {}
        self._dirty_sources: set[tuple[str, str]] = set()
        self._dirty_gateways: set[str] = set()
        self._counters_dirty = False

    # ------------------------------------------------------------------ ingest

    def count(self, reason: str, n: int = 1) -> None:
        self.counters[reason] += n
        self._counters_dirty = True

    def ingest(self, batch: Batch, now: float) -> Outcome:
        """Apply one decoded batch; `now` is the tracker's clock at receipt."""
        gw = batch.gateway
        if gw not in self.enterprises:
            self.count("rejected_unknown_enterprise", len(batch.samples))
            return Outcome.UNKNOWN_ENTERPRISE
        key = (gw, batch.source)
        src = self.sources.get(key)
        if src is None:
            self.count("rejected_unknown_source", len(batch.samples))
            return Outcome.UNKNOWN_SOURCE
        seqs = self.gateways.get(gw)
        if seqs is None:
            seqs = self.gateways[gw] = GatewaySeqs(batch.epoch, self.max_seq_gaps)
        self._dirty_sources.add(key)
        src.last_receive_ts = now
        epoch = seqs.epoch
        if not seqs.add(batch.epoch, batch.seq):
            src.duplicates += len(batch.samples)
            src.duplicate_batches += 1
            return Outcome.DUPLICATE
        if seqs.epoch != epoch:
            log.info("gateway %s: batches from a new queue (epoch %d, was %d): re-imaged, replaced or reset; "
                     "its seqs start again", gw, seqs.epoch, epoch)
        self._dirty_gateways.add(gw)
        specs, tags, dirty = src.spec.tags, src.tags, self._dirty_tags
        latest = now + self.max_future_skew
        accepted = future = 0
        for s in batch.samples:
            if s.ts > latest:
                future += 1
                continue
            tag = tags.get(s.tag)
            if tag is None:
                spec = specs.get(s.tag)
                if spec is None:
                    src.unknown_tag_samples += 1
                    continue
                tag = tags[s.tag] = TagState(spec)
            else:
                spec = tag.spec
            accepted += 1
            ts, value = s.ts, s.value
            if value < spec.range_min or value > spec.range_max:
                src.out_of_range_samples += 1
            if ts <= tag.ts:
                # A replayed backlog arriving after newer live data: counted, but the newest
                # value stays and no rate is computed across an unknown order.
                continue
            if tag.ts != float("-inf"):
                limit = spec.max_rate
                if limit is not None and abs(value - tag.value) > limit * (ts - tag.ts):
                    tag.rate_violation_ts = ts
                    src.rate_violations += 1
                if value != tag.value:
                    tag.change_ts = ts
            else:
                tag.change_ts = ts
            level = spec.alarm_level(value)
            if level != tag.alarm:
                if level:
                    src.alarm_crossings += 1
                tag.alarm = level
            tag.ts, tag.value = ts, value
            if ts > src.last_sample_ts:
                src.last_sample_ts = ts
            dirty[(gw, batch.source, s.tag)] = tag
        src.accepted += accepted
        if future:
            self.future_samples[gw] += future
        return Outcome.ACCEPTED

    # ------------------------------------------------------------------ persistence

    def take_dirty(self) -> Dirty:
        tags = [
            (e, s, t, st.ts, st.value, st.change_ts, st.rate_violation_ts)
            for (e, s, t), st in self._dirty_tags.items()
        ]
        sources = [source_row(k, self.sources[k]) for k in self._dirty_sources]
        gateways = [(gw, *self.gateways[gw].to_row(), self.future_samples[gw]) for gw in self._dirty_gateways]
        counters = list(self.counters.items()) if self._counters_dirty else []
        self._dirty_tags, self._dirty_sources, self._dirty_gateways = {}, set(), set()
        self._counters_dirty = False
        return Dirty(tags, sources, gateways, counters)

    def restore_tag(self, key: tuple[str, str], code: str, row: tuple[float, float, float, float]) -> None:
        src = self.sources.get(key)
        spec = src.spec.tags.get(code) if src else None
        if src is None or spec is None:
            return  # the inventory no longer lists it
        ts, value, change_ts, rate_ts = row
        src.tags[code] = TagState(spec, ts, value, change_ts, rate_ts, spec.alarm_level(value))

    def restore_source(self, key: tuple[str, str], row: tuple) -> None:
        src = self.sources.get(key)
        if src is None:
            return
        (src.accepted, src.duplicates, src.duplicate_batches, src.out_of_range_samples, src.rate_violations,
         src.alarm_crossings, src.unknown_tag_samples, src.last_sample_ts, src.last_receive_ts) = row


SOURCE_FIELDS = (
    "accepted", "duplicates", "duplicate_batches", "out_of_range_samples", "rate_violations",
    "alarm_crossings", "unknown_tag_samples", "last_sample_ts", "last_receive_ts",
)


def source_row(key: tuple[str, str], src: SourceState) -> tuple:
    return (*key, *(getattr(src, f) for f in SOURCE_FIELDS))
