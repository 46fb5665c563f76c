"""What each enterprise must deliver, derived from the validated inventory (never from raw YAML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Annotation, Enterprise, Tag, TagKind
from hazmon.inventory.validate import load_valid
from hazmon.tracker.settings import Thresholds


@dataclass(frozen=True, slots=True)
class ExpectedTag:
    code: str
    kind: TagKind
    unit: str
    interval: float
    window: float  # completeness window, seconds
    range_min: float
    range_max: float
    flatline_after: float | None  # None: never flagged flat (discrete)
    max_rate: float | None  # engineering units per second; None: not checked
    alarm_low_low: float | None = None
    alarm_low: float | None = None
    alarm_high: float | None = None
    alarm_high_high: float | None = None

    def alarm_level(self, value: float) -> str:
        """The set point this value crosses, most severe first; "" when none."""
        if self.alarm_high_high is not None and value >= self.alarm_high_high:
            return "high_high"
        if self.alarm_low_low is not None and value <= self.alarm_low_low:
            return "low_low"
        if self.alarm_high is not None and value >= self.alarm_high:
            return "high"
        if self.alarm_low is not None and value <= self.alarm_low:
            return "low"
        return ""


@dataclass(slots=True)
class ExpectedSource:
    enterprise: str
    city: str
    name: str
    # False for a plant in long-term shutdown (R4): tracked if it sends, never counted as missing.
    expected: bool
    tags: dict[str, ExpectedTag] = field(default_factory=dict)

    @property
    def window(self) -> float:
        """A source is stalled when even its fastest tag has been silent past its window."""
        return min((t.window for t in self.tags.values()), default=0.0)


@dataclass(slots=True)
class ExpectedEnterprise:
    code: str
    name: str
    city: str
    state: str
    annotations: tuple[str, ...]
    expected: bool
    sources: dict[str, ExpectedSource] = field(default_factory=dict)


def expected_tag(tag: Tag, th: Thresholds) -> ExpectedTag:
    return ExpectedTag(
        code=tag.code,
        kind=tag.kind,
        unit=tag.unit,
        interval=tag.interval,
        window=th.window(tag.interval),
        range_min=tag.range_min,
        range_max=tag.range_max,
        flatline_after=th.flatline_after(tag.kind),
        max_rate=th.max_rate(tag.kind, tag.range_min, tag.range_max),
        alarm_low_low=tag.alarm_low_low,
        alarm_low=tag.alarm_low,
        alarm_high=tag.alarm_high,
        alarm_high_high=tag.alarm_high_high,
    )


def expected_enterprise(ent: Enterprise, th: Thresholds) -> ExpectedEnterprise:
    expected = Annotation.LONG_TERM_SHUTDOWN not in ent.annotations
    out = ExpectedEnterprise(
        ent.code, ent.name, ent.city, ent.state.value, tuple(a.value for a in ent.annotations), expected
    )
    for src in ent.data_sources:
        out.sources[src.name] = ExpectedSource(
            ent.code, ent.city, src.name, expected, {t.code: expected_tag(t, th) for t in src.tags}
        )
    return out


def expectations(inv: Inventory, th: Thresholds) -> dict[str, ExpectedEnterprise]:
    return {ent.code: expected_enterprise(ent, th) for ent in inv.enterprises}


def load_expectations(inventory_dir: Path, th: Thresholds) -> dict[str, ExpectedEnterprise]:
    """Raises InventoryError on an invalid inventory: the tracker does not run on one."""
    inv, _ = load_valid(inventory_dir)
    return expectations(inv, th)
