"""Acceptance 1 (R3): export the lab's survey tables and import them back: nothing changes."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from tables_helpers import Book, snapshot

from hazmon.cli.main import main
from hazmon.inventory.model import Annotation
from hazmon.inventory.validate import load_valid
from hazmon.tables.export import export_workbooks
from hazmon.tables.importer import import_workbook
from hazmon.tables.sheets import CONFIDENTIAL_NOTE, FIRST_ROW, SHEETS


def _models(root: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    inv, _ = load_valid(root)
    return ({e.code: e.model_dump() for e in inv.enterprises}, {c: city.model_dump() for c, city in inv.cities.items()})


def test_round_trip_leaves_model_and_files_unchanged(lab_copy: Path, tmp_path: Path) -> None:
    models, files = _models(lab_copy), snapshot(lab_copy)
    out = tmp_path / "out"
    assert main(["tables", "export", str(lab_copy), "--out", str(out)]) == 0
    books = sorted(out.glob("*.xlsx"))
    inv, _ = load_valid(lab_copy)
    assert len(books) == len(inv.cities) >= 2
    for book in books:
        assert main(["tables", "import", str(book), "--into", str(lab_copy)]) == 0
    assert _models(lab_copy) == models
    assert snapshot(lab_copy) == files  # byte-identical: an unchanged enterprise's file is never rewritten


def test_round_trip_finds_no_change_to_make(lab_copy: Path, books: dict[str, Book]) -> None:
    for book in books.values():
        outcome = import_workbook(book.path, lab_copy)
        assert outcome.applied
        assert outcome.problems == [] and outcome.changes == [] and outcome.files == []


def test_every_record_has_its_row(lab_copy: Path, books: dict[str, Book]) -> None:
    inv, _ = load_valid(lab_copy)
    for code, book in books.items():
        ents = [e for e in inv.enterprises if e.city == code]
        wb = book.open()
        expected = {
            "附件3": sum(len(e.hazard_sources) for e in ents),
            "附件6": len(ents),
            "附件7": sum(len(e.devices.nvrs) for e in ents),
            "附件8": sum(len(e.cameras) for e in ents),
            "附件9": len(ents),
            "附件10": len(ents),
        }
        assert wb.sheetnames[1:] == [s.name for s in SHEETS]
        for name, count in expected.items():
            ws = wb[name]
            rows = [r for r in ws.iter_rows(min_row=FIRST_ROW, values_only=True) if any(v is not None for v in r)]
            assert len(rows) == count, name
            assert str(ws["A1"].value).startswith(name) and inv.cities[code].name in ws["A1"].value
        codes = {ws_row[0] for ws_row in wb["附件6"].iter_rows(min_row=FIRST_ROW, min_col=2, max_col=2,
                                                                values_only=True)}
        assert codes == {e.code for e in ents}


def test_device_ids_stay_text(books: dict[str, Book]) -> None:
    """A 20-digit GB/T 28181 ID as a number would lose digits in Excel (15 significant)."""
    for book in books.values():
        wb = book.open()
        for name, header in (("附件7", "国标设备编码"), ("附件8", "通道国标编码")):
            ws = wb[name]
            col = Book.column(ws, header)
            values = [ws.cell(r, col) for r in range(FIRST_ROW, ws.max_row + 1) if ws.cell(r, col).value]
            assert values, name
            assert all(isinstance(c.value, str) and len(c.value) == 20 and c.number_format == "@" for c in values)


def test_confidential_enterprise_is_kept_and_marked(lab_copy: Path, books: dict[str, Book], tmp_path: Path) -> None:
    """保密 (R4) enterprises stay in every table (the city must return them), marked as confidential."""
    code, book = next(iter(books.items()))
    inv, _ = load_valid(lab_copy)
    ent = next(e for e in inv.enterprises if e.city == code and e.cameras)
    wb = book.open()
    ws = wb["附件6"]
    r, c = book.find(ws, "企业标注（R4）", 统一社会信用代码=ent.code)
    ws.cell(r, c).value = "、".join(filter(None, [ws.cell(r, c).value, "保密"]))
    wb.save(book.path)
    assert import_workbook(book.path, lab_copy).applied
    inv, _ = load_valid(lab_copy)
    assert Annotation.CONFIDENTIAL in inv.enterprise(ent.code).annotations

    again = {e.city: e.path for e in export_workbooks(lab_copy, tmp_path / "again")}[code]
    wb = openpyxl.load_workbook(again)
    for name in ("附件6", "附件8", "附件9", "附件10"):
        ws = wb[name]
        r, c = Book(again).find(ws, "备注", 统一社会信用代码=ent.code)
        assert CONFIDENTIAL_NOTE in ws.cell(r, c).value, name
    others = [e for e in inv.enterprises if e.city == code and e.code != ent.code]
    for other in others:
        r, c = Book(again).find(wb["附件10"], "备注", 统一社会信用代码=other.code)
        assert CONFIDENTIAL_NOTE not in (wb["附件10"].cell(r, c).value or "")


def test_round_trip_of_a_synthetic_province(tmp_path: Path) -> None:
    """Every city of a synthetic inventory (all protocols, parent-company routes, blockers) survives."""
    from hazmon.inventory.synth import generate

    root = tmp_path / "synth"
    generate(root, 42, seed=7)
    models, files = _models(root), snapshot(root)
    done = export_workbooks(root, tmp_path / "out")
    assert len(done) == 21
    for exported in done:
        outcome = import_workbook(exported.path, root)
        assert outcome.applied and outcome.problems == [] and outcome.changes == [], exported.path.name
    assert _models(root) == models and snapshot(root) == files
