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
# `seq` is one too (the gateway's queue); the committed ranges sent back carry it.
MAX_SEQ = 2**63 - 1
TOPIC_ROOT = f"hazmon/v{SCHEMA_VERSION}"
# Outside TOPIC_ROOT, so that the tracker's subscription to the data never matches its own acks.
ACK_ROOT = f"hazmon/ack/v{SCHEMA_VERSION}"
# The largest message either side sends or accepts (the broker's max_packet_size is derived from
# it): a batch of a few hundred tags is ~20 kB; a committed-seqs message with a thousand gaps ~30 kB.
MAX_PAYLOAD_BYTES = 256 * 1024


# Why a message was refused: a small fixed set, so that a receiver can count by reason.
TOO_LARGE = "too_large"  # over MAX_PAYLOAD_BYTES: not even parsed
NOT_JSON = "not_json"  # not UTF-8, not JSON, or nested deeper than the parser goes
SCHEMA = "schema"  # JSON, but not a v1 message: a field missing, of the wrong type or out of range
REASONS = (TOO_LARGE, NOT_JSON, SCHEMA)


class WireError(ValueError):
    """A message that does not follow the schema; the receiver counts (by `reason`) and drops it."""

    def __init__(self, message: str, reason: str = SCHEMA) -> None:
        super().__init__(message)
        self.reason = reason


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


def _json_object(payload: bytes, what: str) -> dict:
    """The payload as a JSON object; WireError (with its reason) for anything else."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"{what} of {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})", TOO_LARGE)
    try:
        # Strict UTF-8 first: json.loads(bytes) would also take UTF-16/32 and lone surrogates.
        raw = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(f"{what} is not UTF-8 JSON: {exc}", NOT_JSON) from exc
    if type(raw) is not dict:
        raise WireError(f"{what} is a JSON {type(raw).__name__}, not an object")
    version = raw.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:  # `true == 1` to Python
        raise WireError(f"schema version {version!r:.40}, expected {SCHEMA_VERSION}")
    return raw


def _number(x: object, field: str) -> float:
    """A JSON number (int or float, never a bool or a string) as a finite float."""
    t = type(x)
    if t is float:
        value = x
    elif t is int:
        value = float(x)  # OverflowError for an integer beyond a double: caught by decode
    else:
        raise WireError(f"{field} {x!r:.40} is not a number")
    if not math.isfinite(value):
        raise WireError(f"{field} is not finite")
    return value


def _integer(x: object, field: str, highest: int) -> int:
    if type(x) is not int or not 0 <= x <= highest:
        raise WireError(f"{field} {x!r:.40} is not an integer in 0..{highest}")
    return x


def decode(payload: bytes) -> Batch:
    """A data message; raises WireError, and only WireError, for anything that is not one."""
    raw = _json_object(payload, "batch")
    try:
        gw, source, samples = raw["gw"], raw["src"], raw["samples"]
        if type(gw) is not str or type(source) is not str:
            raise WireError("gw and src must be strings")
        seq = _integer(raw["seq"], "seq", MAX_SEQ)
        epoch = _integer(raw.get("ep", 0), "ep", MAX_EPOCH)
        sent = _number(raw.get("sent", 0.0), "sent")
        if type(samples) is not list:
            raise WireError("samples must be a list")
        out = []
        isfinite = math.isfinite
        for s in samples:
            if type(s) is not dict:
                raise WireError("a sample must be an object")
            tag, ts, value = s["t"], s["ts"], s["v"]
            # The hot path: floats checked inline, anything else through _number.
            if type(ts) is not float or not isfinite(ts):
                ts = _number(ts, f"ts of {tag!r:.40}")
            if type(value) is not float or not isfinite(value):
                value = _number(value, f"value of {tag!r:.40}")
            if type(tag) is not str:
                raise WireError(f"tag {tag!r:.40} is not a string")
            out.append(Sample(tag, ts, value))
        return Batch(gw, seq, source, tuple(out), sent, epoch)
    except WireError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"malformed batch: {exc!r:.200}") from exc


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
        raise WireError(f"committed-seqs message of {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})", TOO_LARGE)
    try:
        raw = json.loads(payload)
        if not isinstance(raw, dict) or type(raw.get("v")) is not int or raw["v"] != SCHEMA_VERSION:
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
