"""Readiness, derived and never typed in: an enterprise is ready only when no error and no
blocker finding stands against it or against the city uplink it depends on (N1)."""

from __future__ import annotations

from dataclasses import dataclass

from hazmon.inventory.findings import Finding, Report, Severity
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Enterprise, Lifecycle, State


@dataclass(frozen=True, slots=True)
class Readiness:
    enterprise: Enterprise
    lifecycle: Lifecycle
    blocking: tuple[Finding, ...]

    @property
    def ready(self) -> bool:
        return not self.blocking


def _city_blockers(report: Report) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        if f.enterprise is None and f.rule == "N1" and f.severity is not Severity.WARNING:
            city = f.file.parent.name.split("-", 1)[0]
            out.setdefault(city, []).append(f)
    return out


def assess(inv: Inventory) -> list[Readiness]:
    by_ent: dict[str, list[Finding]] = {}
    for f in inv.report.findings:
        if f.enterprise is not None and f.severity is not Severity.WARNING:
            by_ent.setdefault(f.enterprise, []).append(f)
    city = _city_blockers(inv.report)
    out = []
    for ent in inv.enterprises:
        blocking = list(by_ent.get(ent.code, []))
        if ent.route.via == "city":
            blocking += city.get(ent.city, [])
        if ent.state is State.SURVEYED:
            lifecycle = Lifecycle.SURVEYED if blocking else Lifecycle.READY
        else:
            lifecycle = Lifecycle(ent.state.value)
        out.append(Readiness(ent, lifecycle, tuple(blocking)))
    return out
