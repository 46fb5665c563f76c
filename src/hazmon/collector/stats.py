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
    # Custody (queue.delete_on: committed): what the province tracker confirmed it committed.
    ack_subscribed: bool = False  # the broker granted the subscription to the gateway's ack topic
    unconfirmed: int = 0  # batches PUBACKed (delivered) and not yet confirmed
    batches_confirmed: int = 0  # rows deleted because the province committed them
    samples_confirmed: int = 0
    resent_batches: int = 0  # delivered batches sent again: the broker lost them
    last_committed: float | None = None  # `at` (tracker clock) of the last message for our epoch
    committed_ignored: Counter[str] = field(default_factory=Counter)  # reason -> messages


@dataclass
class QueueStats:
    samples_queued: int = 0  # committed to the durable queue by this process
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> samples
    moved_aside: int = 0  # corrupt queue databases moved aside at start by this process


@dataclass
class ClockStats:
    readable: bool = True  # adjtimex(2) answered (a systemd ProtectClock=yes makes it fail)
    sync_wait_seconds: float = 0.0  # how long the start waited for synchronisation
    started_unsynced: bool | None = None  # None until polling starts


@dataclass
class Stats:
    sources: dict[str, SourceStats]
    uplink: UplinkStats = field(default_factory=UplinkStats)
    queue: QueueStats = field(default_factory=QueueStats)
    clock: ClockStats = field(default_factory=ClockStats)
