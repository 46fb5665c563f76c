"""The wire schema between hazmon-collector (gateway) and hazmon-tracker (province), v1.

Topic:   hazmon/v1/<city>/<enterprise code>/<source name>
Payload: UTF-8 JSON, one batch of samples of one source:

    {"v": 1, "gw": "91510100MALABE0001", "seq": 1042, "ep": 6120598016474632931, "src": "dcs",
     "sent": 1764323000.25, "samples": [{"t": "LT-101", "ts": 1764323000.11, "v": 12.37}, ...]}

- `gw` is the gateway ID (the enterprise code: one data-acquisition gateway per site, N4).
- `seq` is strictly increasing per gateway queue and survives restarts; it is assigned when the
  batch is written to the gateway's durable queue, so a batch re-sent after a crash or an
  outage carries the same seq and the tracker drops it as a duplicate.
- `ep` (optional) is the queue epoch: a random id the gateway's queue gets when it is created.
  A re-imaged, replaced or reset gateway's queue numbers from 1 again under a new epoch, so the
  tracker deduplicates by (gw, ep, seq). Absent (0 in `Batch.epoch`) from older collectors.
- `ts` is the read time (Unix seconds, gateway clock, NTP-disciplined); `v` is the engineering
  value after scale and offset. `sent` is when this copy was published (replays differ).

Custody (the other direction): the tracker tells each gateway which of its batches the province
has durably committed, and the gateway deletes a batch only then (not on the broker's PUBACK):

Topic:   hazmon/ack/v1/<city>/<enterprise code>       (retained, QoS 1; only the tracker writes)
Payload: {"v": 1, "gw": "91510100MALABE0001", "ep": 6120598016474632931,
          "seqs": [[1, 1040], [1042, 1042]], "at": 1764323001.0}

- `seqs`: the committed seqs of queue epoch `ep`, as sorted, disjoint, inclusive ranges.
- `at`: when the tracker committed them (tracker clock).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

SCHEMA_VERSION = 1
# `ep` is an SQLite INTEGER on both ends (the gateway's queue, the tracker's state): 63 bits.
MAX_EPOCH = 2**63 - 1
TOPIC_ROOT = f"hazmon/v{SCHEMA_VERSION}"
# Outside TOPIC_ROOT, so that the tracker's subscription to the data never matches its own acks.
ACK_ROOT = f"hazmon/ack/v{SCHEMA_VERSION}"
# The largest message either side sends or accepts (the broker's max_packet_size is derived from
# it): a batch of a few hundred tags is ~20 kB; a committed-seqs message with a thousand gaps ~30 kB.
MAX_PAYLOAD_BYTES = 256 * 1024


class WireError(ValueError):
    """A message that does not follow the schema; the receiver counts and drops it."""


def topic(city: str, enterprise: str, source: str) -> str:
    return f"{TOPIC_ROOT}/{city}/{enterprise}/{source}"


def enterprise_topic_filter(city: str, enterprise: str) -> str:
    """What one gateway may publish under (the broker's ACL uses this)."""
    return f"{TOPIC_ROOT}/{city}/{enterprise}/#"


def ack_topic(city: str, enterprise: str) -> str:
    """Where the tracker publishes what it committed of one gateway's batches (custody)."""
    return f"{ACK_ROOT}/{city}/{enterprise}"


def parse_topic(value: str) -> tuple[str, str, str]:
    parts = value.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise WireError(f"topic {value!r} is not {TOPIC_ROOT}/<city>/<enterprise>/<source>")
    return parts[2], parts[3], parts[4]


@dataclass(frozen=True, slots=True)
class Sample:
    tag: str
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class Batch:
    gateway: str
    seq: int
    source: str
    samples: tuple[Sample, ...]
    sent: float = 0.0
    epoch: int = 0  # the queue epoch (`ep`); 0: absent, a collector from before epochs

    def encode(self) -> bytes:
        fields: dict[str, object] = {"v": SCHEMA_VERSION, "gw": self.gateway, "seq": self.seq}
        if self.epoch:
            fields["ep"] = self.epoch
        fields.update(src=self.source, sent=self.sent,
                      samples=[{"t": s.tag, "ts": s.ts, "v": s.value} for s in self.samples])
        return json.dumps(
            fields,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()


def decode(payload: bytes) -> Batch:
    try:
        raw = json.loads(payload)
        if raw.get("v") != SCHEMA_VERSION:
            raise WireError(f"schema version {raw.get('v')!r}, expected {SCHEMA_VERSION}")
        samples = tuple(
            Sample(str(s["t"]), float(s["ts"]), float(s["v"])) for s in raw["samples"]
        )
        seq = int(raw["seq"])
        if seq < 0:
            raise WireError("negative seq")
        epoch = raw.get("ep", 0)
        # A JSON integer only (bool is an int to Python): a float or a string is a broken sender.
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise WireError(f"ep {epoch!r} is not an integer in 0..2^63-1")
        for s in samples:
            if not (math.isfinite(s.ts) and math.isfinite(s.value)):
                raise WireError(f"sample of {s.tag} is not finite")
        return Batch(str(raw["gw"]), seq, str(raw["src"]), samples, float(raw.get("sent", 0.0)), epoch)
    except WireError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WireError(f"malformed batch: {exc}") from exc


# ------------------------------------------------------------------ custody: committed seqs


@dataclass(frozen=True, slots=True)
class Committed:
    """What the province has durably committed of one gateway's queue epoch."""

    gateway: str
    epoch: int
    ranges: tuple[tuple[int, int], ...]  # sorted, disjoint, inclusive
    at: float = 0.0

    def __contains__(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self.ranges)

    @property
    def highest(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None

    def encode(self) -> bytes:
        return json.dumps(
            {"v": SCHEMA_VERSION, "gw": self.gateway, "ep": self.epoch,
             "seqs": [[lo, hi] for lo, hi in self.ranges], "at": self.at},
            separators=(",", ":"), ensure_ascii=False,
        ).encode()


def decode_committed(payload: bytes) -> Committed:
    """The inverse of Committed.encode; WireError for anything else (never another exception)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"committed-seqs message of {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})")
    try:
        raw = json.loads(payload)
        if not isinstance(raw, dict) or raw.get("v") != SCHEMA_VERSION:
            raise WireError("not a committed-seqs message of schema v1")
        gw, epoch, seqs, at = raw["gw"], raw["ep"], raw["seqs"], raw.get("at", 0.0)
        if not isinstance(gw, str) or type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise WireError("gw must be a string and ep an integer in 0..2^63-1")
        if not isinstance(seqs, list) or isinstance(at, bool) or not isinstance(at, int | float):
            raise WireError("seqs must be a list of ranges and at a number")
        ranges: list[tuple[int, int]] = []
        for r in seqs:
            if not (isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r)):
                raise WireError(f"range {r!r} is not [lo, hi] of integers")
            lo, hi = r
            if not 0 <= lo <= hi <= MAX_EPOCH or (ranges and lo <= ranges[-1][1]):
                raise WireError(f"range {r!r} is empty, negative or not after the previous one")
            ranges.append((lo, hi))
        if not math.isfinite(float(at)):
            raise WireError("at is not finite")
        return Committed(gw, epoch, tuple(ranges), float(at))
    except WireError:
        raise
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise WireError(f"malformed committed-seqs message: {exc}") from exc
