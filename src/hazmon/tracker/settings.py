"""The tracker's thresholds: how fresh, how flat, how fast a tag may be before it is flagged (D7).

Defaults suit a DCS polled every few seconds; a YAML file (`--settings`) can change any of them,
per tag kind where it matters. Unknown keys are errors that name the file and the field.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hazmon.inventory.model import TagKind

# Discrete signals legitimately sit still for days and jump from one state to another.
DISCRETE_KINDS = frozenset({TagKind.VALVE, TagKind.STATUS})
# A gas detector reading may jump within a second when a leak reaches it: no rate limit by default.
GAS_KINDS = frozenset({TagKind.COMBUSTIBLE_GAS, TagKind.TOXIC_GAS, TagKind.OXYGEN})


class SettingsError(ValueError):
    """A settings file the tracker refuses to start with."""


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Completeness (完整性, D7): a tag counts as delivered if its newest sample is younger than
    # max(window_factor × its poll interval, min_window_seconds).
    window_factor: float = Field(default=3.0, gt=0)
    min_window_seconds: float = Field(default=10.0, ge=0)
    # Authenticity (真实性, D7): an analog value unchanged for this long (sample time) is flatlined.
    flatline_seconds: float = Field(default=3600.0, gt=0)
    flatline_seconds_by_kind: dict[TagKind, float] = {}
    # Impossible rate of change: |Δv/Δt| above rate_share_per_second × (range_max − range_min),
    # unless a kind has an absolute limit (engineering units per second) or is exempt (null).
    rate_share_per_second: float = Field(default=0.5, gt=0)
    rate_limit_by_kind: dict[TagKind, float | None] = {k: None for k in GAS_KINDS | DISCRETE_KINDS}
    # A rate violation keeps its tag flagged this long, so that a one-sample spike is seen by
    # evaluations and scrapes that come after it.
    rate_hold_seconds: float = Field(default=300.0, ge=0)

    def window(self, interval: float) -> float:
        return max(self.window_factor * interval, self.min_window_seconds)

    def flatline_after(self, kind: TagKind) -> float | None:
        """None: this kind is never flagged as flatlined (discrete signals)."""
        if kind in self.flatline_seconds_by_kind:
            return self.flatline_seconds_by_kind[kind]
        return None if kind in DISCRETE_KINDS else self.flatline_seconds

    def max_rate(self, kind: TagKind, range_min: float, range_max: float) -> float | None:
        """Largest plausible |Δv/Δt| in engineering units per second; None: not checked."""
        if kind in self.rate_limit_by_kind:
            return self.rate_limit_by_kind[kind]
        return self.rate_share_per_second * (range_max - range_min)


class TrackerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    evaluate_every_seconds: float = Field(default=5.0, gt=0)
    # Durable state: commit (and only then acknowledge the MQTT messages) when this many
    # messages wait, or when the oldest has waited this long. Keep max_unacked below the broker's
    # max_inflight_messages (Mosquitto: 20), or the broker stops sending until the timer fires.
    flush_every_seconds: float = Field(default=0.2, gt=0)
    max_unacked: int = Field(default=16, ge=1)
    # Above this many gaps in one gateway's seqs the oldest gap is given up (counted), so that a
    # gateway whose queue overflowed cannot grow the dedup state without bound.
    max_seq_gaps: int = Field(default=1000, ge=1)
    # A failed commit ("database is locked", disk full) is rolled back and tried again after
    # flush_retry_initial_seconds, doubling up to flush_retry_max_seconds. Its changes go into
    # the next attempt and its messages stay unacknowledged until one commits (the broker holds
    # back the rest: nothing is lost, ingest pauses).
    flush_retry_initial_seconds: float = Field(default=0.5, gt=0)
    flush_retry_max_seconds: float = Field(default=30.0, gt=0)
    # How long a commit waits for another process's lock on the state file before it fails.
    state_busy_timeout_seconds: float = Field(default=5.0, ge=0)
    # /healthz and hazmon_tracker_loop_up: a loop (MQTT, flush, evaluation) that has not
    # succeeded for max(health_stale_periods x its period, health_stale_min_seconds) is stale.
    health_stale_periods: float = Field(default=5.0, ge=1)
    health_stale_min_seconds: float = Field(default=30.0, gt=0)
    # A sample stamped further ahead of the tracker's clock is refused and counted per gateway
    # (gateways and tracker are NTP-synchronised to milliseconds). A future sample inside the
    # bound can only make newer samples look like late replays for that long: 10 s is the
    # smallest freshness window (min_window_seconds), so it hides nothing the window would show.
    max_future_skew_seconds: float = Field(default=10.0, ge=0)
    # Custody: at most one Committed message per gateway per this many seconds (the latest state
    # still goes out, on a later flush).
    committed_publish_interval_seconds: float = Field(default=1.0, ge=0)
    # HTTP: the request line and headers must arrive whole within this many seconds, and each
    # write of the answer must progress within it, or the connection is closed.
    http_request_timeout_seconds: float = Field(default=10.0, gt=0)
    thresholds: Thresholds = Thresholds()

    @model_validator(mode="after")
    def _retry_bounds(self) -> TrackerSettings:
        if self.flush_retry_max_seconds < self.flush_retry_initial_seconds:
            raise ValueError("flush_retry_max_seconds must be at least flush_retry_initial_seconds")
        return self

    def stale_after(self, period: float) -> float:
        """How long a loop of this period may go without a success before it is stale."""
        return max(self.health_stale_periods * period, self.health_stale_min_seconds)


def load_settings(path: Path | None) -> TrackerSettings:
    if path is None:
        return TrackerSettings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read tracker settings: {exc}") from exc
    try:
        return TrackerSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"{path}: invalid tracker settings: {problems}") from exc
