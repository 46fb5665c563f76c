"""Fixtures for the survey-table tests: a private copy of the lab inventory and its workbooks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tables_helpers import LAB, Book

from hazmon.inventory.loader import CITIES_DIR, PROVINCE_FILE
from hazmon.tables.export import export_workbooks


@pytest.fixture
def lab_copy(tmp_path: Path) -> Path:
    """The lab inventory as the loader reads it (province and cities), in a private folder."""
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy2(LAB / PROVINCE_FILE, root / PROVINCE_FILE)
    shutil.copytree(LAB / CITIES_DIR, root / CITIES_DIR)
    return root


@pytest.fixture
def books(lab_copy: Path, tmp_path: Path) -> dict[str, Book]:
    """The copy's workbooks, by city code."""
    return {e.city: Book(e.path) for e in export_workbooks(lab_copy, tmp_path / "tables")}
