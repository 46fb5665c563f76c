"""Cross-record rules, one function per notice requirement (IDs of REQUIREMENTS.md).

Each family module exposes RULES, a tuple of callables taking the loaded Inventory and
emitting findings on it. Severity tells what a finding does: ERROR stops everything
downstream; BLOCKER keeps one enterprise from being ready (readiness is derived from them).
"""

from __future__ import annotations

from collections.abc import Callable

from hazmon.inventory.loader import Inventory
from hazmon.inventory.rules import datasources, integrity, network, registration, video

Rule = Callable[[Inventory], None]

ALL_RULES: tuple[Rule, ...] = (
    *integrity.RULES,
    *network.RULES,
    *video.RULES,
    *datasources.RULES,
    *registration.RULES,
)


def run_all(inv: Inventory) -> None:
    for rule in ALL_RULES:
        rule(inv)
