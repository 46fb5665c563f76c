"""Reconnect delays: exponential with jitter, so that many gateways (or sources) that lost the same
peer do not all come back at the same instant."""

from __future__ import annotations

import random
from collections.abc import Iterator

from hazmon.collector.config import BackoffConfig


def backoff_delays(cfg: BackoffConfig, rng: random.Random | None = None) -> Iterator[float]:
    """initial, 2x, 4x ... capped at maximum, each multiplied by a uniform 1 +- jitter."""
    rng = rng or random.Random()
    delay = cfg.initial
    while True:
        yield max(0.0, delay * (1 + rng.uniform(-cfg.jitter, cfg.jitter)))
        delay = min(delay * 2, cfg.maximum)
