"""The wire schema between hazmon-collector (gateway) and hazmon-tracker (province), v1.

Topic:   hazmon/v1/<city>/<enterprise code>/<source name>
Payload: UTF-8 JSON, one batch of samples of one source:

    {"v": 1, "gw": "91510100MALABE0001", "seq": 1042, "src": "dcs", "sent": 1764323000.25,
     "samples": [{"t": "LT-101", "ts": 1764323000.11, "v": 12.37}, ...]}

- `gw` is the gateway ID (the enterprise code: one data-acquisition gateway per site, N4).
- `seq` is strictly increasing per gateway and survives restarts; it is assigned when the
  batch is written to the gateway's durable queue, so a batch re-sent after a crash or an
  outage carries the same seq and the tracker drops it as a duplicate.
- `ts` is the read time (Unix seconds, gateway clock, NTP-disciplined); `v` is the engineering
  value after scale and offset. `sent` is when this copy was published (replays differ).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

SCHEMA_VERSION = 1
TOPIC_ROOT = f"hazmon/v{SCHEMA_VERSION}"


class WireError(ValueError):
    """A message that does not follow the schema; the receiver counts and drops it."""


def topic(city: str, enterprise: str, source: str) -> str:
    return f"{TOPIC_ROOT}/{city}/{enterprise}/{source}"


def enterprise_topic_filter(city: str, enterprise: str) -> str:
    """What one gateway may publish under (the broker's ACL uses this)."""
    return f"{TOPIC_ROOT}/{city}/{enterprise}/#"


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

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": SCHEMA_VERSION,
                "gw": self.gateway,
                "seq": self.seq,
                "src": self.source,
                "sent": self.sent,
                "samples": [{"t": s.tag, "ts": s.ts, "v": s.value} for s in self.samples],
            },
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
        for s in samples:
            if not (math.isfinite(s.ts) and math.isfinite(s.value)):
                raise WireError(f"sample of {s.tag} is not finite")
        return Batch(str(raw["gw"]), seq, str(raw["src"]), samples, float(raw.get("sent", 0.0)))
    except WireError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WireError(f"malformed batch: {exc}") from exc
