"""Helpers of the survey-table tests (a module of its own name: `conftest` is not importable safely)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import openpyxl
from openpyxl.worksheet.worksheet import Worksheet

from hazmon.tables.sheets import FIRST_ROW

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


def snapshot(root: Path) -> dict[str, str]:
    """Every file of an inventory copy, by content hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class Book:
    """An exported workbook, and how to find a cell in it by header and row key."""

    path: Path

    def open(self) -> openpyxl.Workbook:
        return openpyxl.load_workbook(self.path)

    @staticmethod
    def column(ws: Worksheet, header: str) -> int:
        for cell in ws[FIRST_ROW - 1]:
            if cell.value == header:
                return cell.column
        raise AssertionError(f"no column {header!r} in {ws.title}")

    def find(self, ws: Worksheet, header: str, **keys: str) -> tuple[int, int]:
        """(row, column) of `header` in the row whose key columns hold `keys` (header -> value)."""
        cols = {self.column(ws, h): v for h, v in keys.items()}
        for r in range(FIRST_ROW, ws.max_row + 1):
            if all(ws.cell(r, c).value == v for c, v in cols.items()):
                return r, self.column(ws, header)
        raise AssertionError(f"no row {keys} in {ws.title}")
