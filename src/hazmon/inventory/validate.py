"""The one entry point every consumer uses: load, check every rule, derive readiness."""

from __future__ import annotations

from pathlib import Path

from hazmon.inventory import rules
from hazmon.inventory.findings import InventoryError
from hazmon.inventory.loader import Inventory, load
from hazmon.inventory.parsecache import ParseCache
from hazmon.inventory.readiness import Readiness, assess


def validate(root: Path | str, *, link_roots: tuple[Path, ...] = ()) -> tuple[Inventory, list[Readiness]]:
    """Load and check an inventory. Findings are on `inv.report`; nothing is raised. Symbolic links
    may lead inside the inventory or into `link_roots` (see loader.load)."""
    cache = ParseCache.for_root(Path(root).resolve())
    inv = load(root, parse_cache=cache, link_roots=link_roots)
    rules.run_all(inv)
    inv.report.findings.sort(key=lambda f: (str(f.file), f.line or 0, f.rule))
    cache.save()  # once, with the line lookups the findings made
    return inv, assess(inv)


def load_valid(root: Path | str) -> tuple[Inventory, list[Readiness]]:
    """For consumers (Ansible plugin, lab, collector configs): refuse an invalid inventory."""
    inv, ready = validate(root)
    if not inv.report.ok:
        raise InventoryError(inv.report, inv.root)
    return inv, ready
