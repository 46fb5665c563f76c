"""Survey-table figures (R3): export and import times at province scale.

Run: .venv/bin/python bench/bench_tables.py [--enterprises 1000] [--seed 1]

A synthetic inventory (hazmon.inventory.synth, spread over the 21 cities) is written to a temporary
folder. Paths measured:
  validate     load_valid of the whole inventory (the floor under every export and import)
  export       all 21 workbooks, one per city
  round trip   importing every workbook back unchanged (nothing to write, so no second validation)
  one edit     importing the largest city's workbook with one measured bandwidth changed: parse,
               render the YAML, validate the would-be inventory in a linked temporary copy, write
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import openpyxl

from hazmon.inventory.synth import generate
from hazmon.inventory.validate import load_valid
from hazmon.tables.export import export_workbooks
from hazmon.tables.importer import import_workbook
from hazmon.tables.sheets import FIRST_ROW

T = TypeVar("T")


def _timed(label: str, fn: Callable[..., T], *args: object, **kwargs: object) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    took = time.perf_counter() - started
    print(f"{label:<42} {took:8.2f} s")
    return result, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enterprises", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as tmp:
        root, out = Path(tmp) / "synth", Path(tmp) / "tables"
        stats = generate(root, args.enterprises, args.seed)
        print(f"inventory: {stats.enterprises} enterprises, {stats.hazard_sources} hazard sources, "
              f"{stats.cameras} cameras, {stats.nvrs} NVRs, {stats.tags} tags, 21 cities")
        _timed("validate (load_valid)", load_valid, root)
        done, took = _timed("export (21 workbooks)", export_workbooks, root, out)
        rows = sum(sum(d.rows.values()) for d in done)
        size = sum(d.path.stat().st_size for d in done)
        print(f"  {rows} rows, {size / 1e6:.1f} MB, {rows / took:,.0f} rows/s")

        def round_trip() -> int:
            changes = 0
            for d in done:
                outcome = import_workbook(d.path, root)
                assert outcome.applied and not outcome.problems, outcome.problems[:3]
                changes += len(outcome.changes)
            return changes

        changes, took = _timed("round trip (21 imports, no change)", round_trip)
        assert changes == 0
        print(f"  {took / len(done):.2f} s per city workbook")

        big = max(done, key=lambda d: d.rows["附件6"])
        wb = openpyxl.load_workbook(big.path)
        ws = wb["附件10"]
        col = next(c.column for c in ws[FIRST_ROW - 1] if c.value == "专线实测带宽（Mbps）")
        ws.cell(FIRST_ROW, col).value = 77
        wb.save(big.path)
        outcome, _ = _timed(f"one edit ({big.rows['附件6']} enterprises' workbook)", import_workbook, big.path, root)
        assert outcome.applied and len(outcome.changes) == 1, outcome.problems[:3]


if __name__ == "__main__":
    main()
