"""Acceptance 2 (R3): a workbook with a bad cell is refused whole, cell by cell, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl.utils import get_column_letter
from tables_helpers import Book, snapshot

from hazmon.cli.main import main
from hazmon.inventory.model import Enterprise
from hazmon.inventory.validate import load_valid
from hazmon.tables.importer import WorkbookError, import_workbook


def _first(root: Path, city: str, pred: Callable[[Enterprise], object]) -> Enterprise:
    inv, _ = load_valid(root)
    return next(e for e in inv.enterprises if e.city == city and pred(e))


def _edit(book: Book, sheet: str, header: str, value: object, **keys: str) -> str:
    """Write one cell; return its Excel coordinate as the importer reports it (附件8!E4)."""
    wb = book.open()
    ws = wb[sheet]
    r, c = book.find(ws, header, **keys)
    ws.cell(r, c).value = value
    wb.save(book.path)
    return f"{sheet}!{get_column_letter(c)}{r}"


def test_camera_outside_192_168_is_refused_with_v1(lab_copy: Path, books: dict[str, Book],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    city, book = next(iter(books.items()))
    ent = _first(lab_copy, city, lambda e: e.cameras)
    cam = ent.cameras[-1]
    where = _edit(book, "附件8", "IP地址（V1）", "10.23.1.3", 统一社会信用代码=ent.code, 摄像头名称=cam.name)
    before = snapshot(lab_copy)
    assert main(["tables", "import", str(book.path), "--into", str(lab_copy)]) != 0
    err = capsys.readouterr().err
    assert f"{where}: V1:" in err and "10.23.1.3" in err
    assert "nothing" in err or "not changed" in err
    assert snapshot(lab_copy) == before


def test_non_number_bandwidth_is_refused_with_its_cell(lab_copy: Path, books: dict[str, Book]) -> None:
    city, book = next(iter(books.items()))
    ent = _first(lab_copy, city, lambda e: True)
    where = _edit(book, "附件10", "专线实测带宽（Mbps）", "二十兆", 统一社会信用代码=ent.code)
    before = snapshot(lab_copy)
    outcome = import_workbook(book.path, lab_copy)
    assert not outcome.applied
    assert [(p.where, p.rule) for p in outcome.problems] == [(where, "SCHEMA")]
    assert "not a number" in outcome.problems[0].message
    assert snapshot(lab_copy) == before


def test_one_bad_cell_stops_the_good_ones(lab_copy: Path, books: dict[str, Book]) -> None:
    """All or nothing: a valid change elsewhere in the same workbook is not applied either."""
    city, book = next(iter(books.items()))
    ents = [e for e in load_valid(lab_copy)[0].enterprises if e.city == city]
    _edit(book, "附件10", "专线实测带宽（Mbps）", 99, 统一社会信用代码=ents[0].code)
    cam_ent = next(e for e in ents if e.cameras)
    bad = _edit(book, "附件8", "IP地址（V1）", "10.23.1.3", 统一社会信用代码=cam_ent.code,
                摄像头名称=cam_ent.cameras[0].name)
    before = snapshot(lab_copy)
    outcome = import_workbook(book.path, lab_copy)
    assert not outcome.applied and {p.where for p in outcome.problems} == {bad}
    assert snapshot(lab_copy) == before


def test_blocker_is_recorded_only_when_accepted(lab_copy: Path, books: dict[str, Book]) -> None:
    """A camera really at 10.23.1.3 may be recorded on purpose: it then holds the enterprise back (V1)."""
    city, book = next(iter(books.items()))
    ent = _first(lab_copy, city, lambda e: e.cameras)
    _edit(book, "附件8", "IP地址（V1）", "10.23.1.3", 统一社会信用代码=ent.code, 摄像头名称=ent.cameras[0].name)
    outcome = import_workbook(book.path, lab_copy, accept_blockers=True)
    # V1 is recorded as a warning; READY: the 进度 cell still says 就绪, which the enterprise no longer is.
    assert outcome.applied and sorted(w.rule for w in outcome.warnings) == ["READY", "V1"]
    inv, ready = load_valid(lab_copy)
    assert str(inv.enterprise(ent.code).cameras[0].address) == "10.23.1.3"
    assert any(f.rule == "V1" for r in ready if r.enterprise.code == ent.code for f in r.blocking)


def test_error_is_refused_even_with_accept_blockers(lab_copy: Path, books: dict[str, Book]) -> None:
    city, book = next(iter(books.items()))
    ent = _first(lab_copy, city, lambda e: True)
    where = _edit(book, "附件10", "专线签约带宽（Mbps，N2）", 10, 统一社会信用代码=ent.code)
    links = _edit(book, "附件10", "机房至中控室链路数（N3）", 2, 统一社会信用代码=ent.code)
    before = snapshot(lab_copy)
    outcome = import_workbook(book.path, lab_copy, accept_blockers=True)
    assert not outcome.applied
    assert {(p.where, p.rule) for p in outcome.problems} == {(where, "N2"), (links, "N3")}
    assert snapshot(lab_copy) == before


@pytest.mark.parametrize(
    ("sheet", "header", "value", "rule", "words"),
    [
        ("附件7", "支持GB/T 28181（V2）", "也许", "SCHEMA", "neither"),
        ("附件7", "国标设备编码", 5.101e19, "GB28181", "as text"),
        ("附件7", "IP地址", "198.19.999.1", "SCHEMA", "not an IPv4 address"),
        ("附件6", "联网类别", "重大危险源、石油化工", "SCHEMA", "not a known programme"),
        ("附件10", "测量日期", "十一月", "SCHEMA", "not a date"),
        ("附件10", "机柜空余U数（N5）", 16.5, "SCHEMA", "not a whole number"),
    ],
)
def test_unreadable_cells(lab_copy: Path, books: dict[str, Book], sheet: str, header: str, value: object,
                          rule: str, words: str) -> None:
    city, book = next(iter(books.items()))
    ent = _first(lab_copy, city, lambda e: e.devices.nvrs)
    keys = {"统一社会信用代码": ent.code} | ({"NVR名称": ent.devices.nvrs[0].name} if sheet == "附件7" else {})
    where = _edit(book, sheet, header, value, **keys)
    outcome = import_workbook(book.path, lab_copy)
    assert [(p.where, p.rule) for p in outcome.problems] == [(where, rule)]
    assert words in outcome.problems[0].message and not outcome.applied


def test_typed_in_ready_changes_nothing(lab_copy: Path, books: dict[str, Book]) -> None:
    """就绪 is derived from the rules (readiness.py): typed in, it is recorded as surveyed, with a warning."""
    _, ready = load_valid(lab_copy)
    held = next(r for r in ready if not r.ready and r.enterprise.state == "surveyed")
    book = books[held.enterprise.city]
    where = _edit(book, "附件6", "进度", "就绪", 统一社会信用代码=held.enterprise.code)
    before = snapshot(lab_copy)
    outcome = import_workbook(book.path, lab_copy)
    assert outcome.applied and outcome.changes == []
    assert [(w.where, w.rule) for w in outcome.warnings] == [(where, "READY")]
    assert snapshot(lab_copy) == before


def test_unknown_enterprise_and_duplicate_rows(lab_copy: Path, books: dict[str, Book]) -> None:
    city, book = next(iter(books.items()))
    ent = _first(lab_copy, city, lambda e: e.cameras)
    wb = book.open()
    ws = wb["附件8"]
    r, c = book.find(ws, "统一社会信用代码", 统一社会信用代码=ent.code, 摄像头名称=ent.cameras[0].name)
    dup = [ws.cell(r, k).value for k in range(1, ws.max_column + 1)]
    ws.append(dup)
    ws.append([None, "某公司", "91510100MA0000000X", *dup[3:]])
    wb.save(book.path)
    outcome = import_workbook(book.path, lab_copy)
    rules = {(p.where, p.rule) for p in outcome.problems}
    key_col = get_column_letter(book.column(ws, "摄像头名称"))
    code_col = get_column_letter(c)
    assert rules == {(f"附件8!{key_col}{ws.max_row - 1}", "UNIQ"), (f"附件8!{code_col}{ws.max_row}", "REF")}


def test_new_nvr_without_credential_says_where_it_belongs(lab_copy: Path, books: dict[str, Book]) -> None:
    """The tables do not carry an NVR's vault credential: a new NVR row is refused, at its key cell."""
    city, book = next(iter(books.items()))
    ent = _first(lab_copy, city, lambda e: e.devices.nvrs)
    where = _edit(book, "附件7", "NVR名称", "nvr-new", 统一社会信用代码=ent.code, NVR名称=ent.devices.nvrs[0].name)
    outcome = import_workbook(book.path, lab_copy)
    assert any(p.where == where and p.rule == "SCHEMA" and "credential" in p.message
               and "enterprise file" in p.message for p in outcome.problems)
    assert not outcome.applied


def test_invalid_inventory_and_foreign_file_are_refused(lab_copy: Path, books: dict[str, Book],
                                                        tmp_path: Path) -> None:
    book = next(iter(books.values()))
    junk = tmp_path / "junk.xlsx"
    junk.write_text("not a workbook")
    with pytest.raises(WorkbookError):
        import_workbook(junk, lab_copy)
    assert main(["tables", "import", str(junk), "--into", str(lab_copy)]) == 2
    city = next(lab_copy.glob("cities/*/city.yml"))
    city.write_text(city.read_text().replace("contracted_mbps: 100", "contracted_mbps: 50"))
    before = snapshot(lab_copy)
    assert main(["tables", "import", str(book.path), "--into", str(lab_copy)]) == 2
    assert main(["tables", "export", str(lab_copy), "--out", str(tmp_path / "x")]) == 2
    assert snapshot(lab_copy) == before and not (tmp_path / "x").exists()
