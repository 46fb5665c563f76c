"""The process behind a simulated DCS/GDS: one moving signal per tag, and the faults the lab injects.

Every value a signal holds is already quantised to what the wire can carry (the tag's data type,
scale and offset), so that what `{"cmd":"values"}` reports is exactly what a client decodes.
Signals move plausibly: a tank level drifts slowly, a temperature or pressure
wanders around a set point, a gas reading stays near zero with rare small bumps, and none crosses
an alarm limit unless the lab asks for it (set, out_of_range).
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field
from enum import StrEnum

from hazmon.collector.config import TagConfig
from hazmon.collector.registers import decode, from_value
from hazmon.inventory.model import INT_BOUNDS, REGISTER_WIDTH, DataType, Tag, TagKind

GAS_KINDS = frozenset({TagKind.COMBUSTIBLE_GAS, TagKind.TOXIC_GAS})


class Mode(StrEnum):
    MOVING = "moving"
    FROZEN = "frozen"  # freeze: the value stops where it is
    FORCED = "forced"  # set / out_of_range: held at a value the lab chose


class SignalError(ValueError):
    """A value or a tag the simulator cannot serve; the message names the tag and the rule."""


def tag_config(tag: Tag) -> TagConfig:
    """The collector's view of a tag: one register codec for the collector and the simulator."""
    return TagConfig(
        code=tag.code, register=tag.reg, function=tag.function, node=tag.node, type=tag.type,
        byte_order=tag.byte_order, word_order=tag.word_order, scale=tag.scale, offset=tag.offset,
        interval=tag.interval,
    )


def raw_of(tag: Tag, value: float) -> float | int:
    """raw = (value - offset) / scale, rounded for integer types; refuse what the type cannot hold."""
    if tag.scale == 0:
        raise SignalError(f"tag {tag.code}: scale 0 cannot encode any value")
    raw = (value - tag.offset) / tag.scale
    if not math.isfinite(raw):
        raise SignalError(f"tag {tag.code}: value {value} is not a finite number")
    bounds = INT_BOUNDS.get(tag.type)
    if bounds is None:
        if tag.type is DataType.FLOAT32 and abs(raw) > 3.4e38:
            raise SignalError(f"tag {tag.code}: value {value} does not fit a float32")
        return raw
    raw_int = round(raw)
    if not bounds[0] <= raw_int <= bounds[1]:
        raise SignalError(
            f"tag {tag.code}: value {value} gives raw {raw_int}, outside {tag.type} "
            f"[{bounds[0]}, {bounds[1]}] (scale {tag.scale}, offset {tag.offset})"
        )
    return raw_int


def encode(tag: Tag, value: float) -> list[int]:
    """The registers a device holds for `value`, in the tag's type and byte/word order."""
    return from_value(raw_of(tag, value), tag.type, tag.byte_order, tag.word_order)


def quantise(tag: Tag, value: float, config: TagConfig | None = None) -> float:
    """The engineering value a client decodes after `value` went through the tag's encoding."""
    return decode(encode(tag, value), config or tag_config(tag))


def typed_value(tag: Tag, value: float) -> float | int:
    """The raw value in the tag's type (for OPC UA variants): an int for integer types."""
    raw = raw_of(tag, value)
    if tag.type is DataType.FLOAT32:
        return struct.unpack(">f", struct.pack(">f", raw))[0]
    return raw


def _alarm_band(tag: Tag) -> tuple[float, float]:
    """Where a healthy signal may move: inside the range, a margin inside every alarm limit."""
    span = tag.range_max - tag.range_min
    margin = 0.03 * span
    lows = [tag.range_min] + [a + margin for a in (tag.alarm_low_low, tag.alarm_low) if a is not None]
    highs = [tag.range_max] + [a - margin for a in (tag.alarm_high, tag.alarm_high_high) if a is not None]
    lo, hi = max(lows), min(highs)
    if lo > hi:  # alarm limits closer than two margins: sit in the middle of them
        mid = (max(lows) + min(highs)) / 2
        return mid, mid
    return lo, hi


@dataclass
class Signal:
    """One tag's value over time."""

    tag: Tag
    rng: random.Random
    value: float = 0.0
    mode: Mode = Mode.MOVING
    set_point: float = 0.0
    bump: float = 0.0  # gas: the current small bump, decaying
    trend: float = 1.0  # level: +1 filling, -1 emptying
    band: tuple[float, float] = (0.0, 0.0)
    config: TagConfig | None = None

    def __post_init__(self) -> None:
        self.config = tag_config(self.tag)  # built once: a tick quantises every tag
        self.band = _alarm_band(self.tag)
        lo, hi = self.band
        if self.tag.kind in GAS_KINDS:
            self.set_point = lo + 0.01 * (hi - lo)
        elif self.tag.kind is TagKind.OXYGEN and lo <= 20.9 <= hi:
            self.set_point = 20.9  # air
        elif self.tag.kind in (TagKind.VALVE, TagKind.STATUS):
            self.set_point = lo
        else:
            self.set_point = lo + (0.35 + 0.3 * self.rng.random()) * (hi - lo)
        self.value = self._fit(self.set_point)

    def _fit(self, value: float) -> float:
        """Clamp into the healthy band and quantise; take the band's middle if rounding left it."""
        lo, hi = self.band
        value = min(max(value, lo), hi)
        q = quantise(self.tag, value, self.config)
        if not lo <= q <= hi and lo < hi:
            q = quantise(self.tag, (lo + hi) / 2, self.config)
        return q

    def step(self, dt: float) -> None:
        """Move one tick of `dt` seconds (only a moving signal moves)."""
        if self.mode is not Mode.MOVING:
            return
        lo, hi = self.band
        span = max(hi - lo, 1e-9)
        kind = self.tag.kind
        if kind is TagKind.LEVEL:
            # Filling or emptying slowly, about 1 % of the band a minute, turning near the band's ends
            # (and now and then in between, as a tank is pumped in and out).
            if self.value <= lo + 0.1 * span:
                self.trend = 1.0
            elif self.value >= hi - 0.1 * span:
                self.trend = -1.0
            elif self.rng.random() < 0.002 * dt:
                self.trend = -self.trend
            drift = (0.01 / 60) * span * dt * self.trend
            target = self.value + drift + self.rng.gauss(0, 0.0005 * span)
        elif kind in GAS_KINDS:
            # Near zero; a rare small bump (a few % of the band) that fades within seconds.
            if self.rng.random() < 0.01 * dt:
                self.bump = self.rng.uniform(0.02, 0.06) * span
            self.bump *= math.exp(-dt / 5.0)
            target = self.set_point + self.bump + abs(self.rng.gauss(0, 0.003 * span))
        elif kind in (TagKind.VALVE, TagKind.STATUS):
            target = self.value
        else:
            # Temperature, pressure, flow, oxygen: mean-reverting wander around the set point.
            pull = (self.set_point - self.value) * min(1.0, 0.1 * dt)
            target = self.value + pull + self.rng.gauss(0, 0.003 * span * math.sqrt(dt))
        self.value = self._fit(target)

    def force(self, value: float) -> float:
        """Hold the signal at `value` (as quantised on the wire) until unfreeze."""
        self.value = quantise(self.tag, value, self.config)
        self.mode = Mode.FORCED
        return self.value

    def out_of_range(self, side: str = "high") -> float:
        """Hold the signal outside [range_min, range_max] (a broken transmitter or a bad scale)."""
        span = self.tag.range_max - self.tag.range_min
        step = max(0.1 * span, abs(self.tag.scale))
        sides = ["high", "low"] if side == "high" else ["low", "high"]
        for s in sides:
            candidate = self.tag.range_max + step if s == "high" else self.tag.range_min - step
            try:
                q = quantise(self.tag, candidate, self.config)
            except SignalError:
                continue
            if not self.tag.range_min <= q <= self.tag.range_max:
                return self.force(q)
        raise SignalError(f"tag {self.tag.code}: no value outside [{self.tag.range_min}, "
                          f"{self.tag.range_max}] fits {self.tag.type} with scale {self.tag.scale}")

    def freeze(self) -> None:
        self.mode = Mode.FROZEN

    def unfreeze(self) -> None:
        """Move again; a forced value first returns into the healthy band."""
        if self.mode is Mode.FORCED:
            self.bump = 0.0
            self.value = self._fit(self.value)
        self.mode = Mode.MOVING


@dataclass
class Process:
    """Every tag of one data source, moving together."""

    tags: list[Tag]
    seed: int | None = None
    signals: dict[str, Signal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        for tag in self.tags:
            # A generator per tag: a fault on one tag does not change the others' sequences.
            self.signals[tag.code] = Signal(tag, random.Random(rng.random()))

    def signal(self, code: object) -> Signal:
        if not isinstance(code, str) or code not in self.signals:
            known = ", ".join(self.signals)
            raise SignalError(f"unknown tag {code!r}; this source serves: {known}")
        return self.signals[code]

    def step(self, dt: float) -> None:
        for sig in self.signals.values():
            sig.step(dt)

    def values(self) -> dict[str, float]:
        return {code: sig.value for code, sig in self.signals.items()}

    def modes(self) -> dict[str, str]:
        return {code: str(sig.mode) for code, sig in self.signals.items()}

    def registers(self, function: str, start: int = 0, count: int = 65536) -> dict[int, int]:
        """Register address -> value for one function table ("holding" or "input"), for the tags
        that overlap [start, start + count) (only those are encoded: this runs at every read)."""
        out: dict[int, int] = {}
        end = start + count
        for sig in self.signals.values():
            tag = sig.tag
            if tag.function != function or tag.reg is None:
                continue
            if tag.reg >= end or tag.reg + REGISTER_WIDTH[tag.type] <= start:
                continue
            for i, reg in enumerate(encode(tag, sig.value)):
                out[tag.reg + i] = reg
        return out
