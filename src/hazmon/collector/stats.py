"""Counters and states the metrics are built from at each scrape.

Each field has one writer (a source's task, or the uplink thread), so plain attributes suffice;
the scrape only reads them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SourceStats:
    name: str
    protocol: str
    up: bool = False
    polls: int = 0
    poll_seconds_sum: float = 0.0
    last_poll_seconds: float = 0.0
    last_success: float | None = None  # Unix time of the last poll that read every due tag
    samples_read: int = 0
    connects: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # kind -> count
    overruns: int = 0  # ticks skipped because a poll took longer than its interval


@dataclass
class UplinkStats:
    connected: bool = False
    connects: int = 0
    refusals: int = 0  # CONNACK with a failure code (bad credentials, not authorised)
    batches_published: int = 0  # acknowledged by the broker (PUBACK)
    samples_published: int = 0
    batches_sent: int = 0  # PUBLISH packets handed to the client, replays and re-sends included
    replayed_batches: int = 0
    inflight: int = 0
    last_ack: float | None = None


@dataclass
class QueueStats:
    samples_queued: int = 0  # committed to the durable queue by this process
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> samples


@dataclass
class Stats:
    sources: dict[str, SourceStats]
    uplink: UplinkStats = field(default_factory=UplinkStats)
    queue: QueueStats = field(default_factory=QueueStats)
