"""Write the survey tables: one workbook per city, one sheet per attachment (R3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from hazmon.inventory.findings import Finding
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import City
from hazmon.inventory.readiness import Readiness
from hazmon.inventory.validate import load_valid
from hazmon.tables.sheets import CONFIDENTIAL_NOTE, FIRST_ROW, NOTES_SHEET, SHEETS, Row, Sheet, record_doc

INFO_FILL = PatternFill("solid", fgColor="E7E6E6")  # derived columns: grey, ignored on import
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
CONFIDENTIAL_FILL = PatternFill("solid", fgColor="FCE4D6")
WRAP_TOP = Alignment(wrap_text=True, vertical="top")
INFO_COMMENT = "导出时由清单生成，导入时忽略（derived on export, ignored on import）"

# The notes sheet is a list of (label, value) rows; import reads the city code back from it.
NOTE_CITY_CODE = "市州代码"


@dataclass(frozen=True, slots=True)
class Exported:
    city: str
    path: Path
    rows: dict[str, int]  # sheet name -> number of data rows


def workbook_name(city: City) -> str:
    return f"{city.code}-{city.name}.xlsx"


def _notes(ws: Worksheet, inv: Inventory, city: City) -> None:
    rows = [
        ("四川省危险化学品安全风险监测预警联网调研表（川应急函〔2020〕238号）", ""),
        (NOTE_CITY_CODE, city.code),
        ("市州", city.name),
        ("清单", inv.name),
        ("电子政务外网上联签约带宽（Mbps，N1）", city.uplink.contracted_mbps),
        ("电子政务外网上联实测带宽（Mbps）", city.uplink.measured_mbps),
        ("灰色列", "由清单生成，导入时忽略；其余列导入时写回清单"),
        ("保密企业", f"照常列出并标注「{CONFIDENTIAL_NOTE}」，整行以橙色标出"),
        ("导入", "hazmon tables import 本文件 --into 清单目录：任一单元格不合规则整本不写入"),
    ]
    for r, (key, value) in enumerate(rows, start=1):
        ws.cell(r, 1, key).font = Font(bold=r == 1)
        ws.cell(r, 2, value)
    ws.column_dimensions["A"].width = 40
    ws.column_dimensions["B"].width = 60


def _sheet(ws: Worksheet, sheet: Sheet, city: City, rows: list[Row]) -> None:
    ncol = len(sheet.columns) + 1
    ws.cell(1, 1, f"{sheet.name} {sheet.title}（{city.name}，{city.code}）").font = Font(bold=True, size=14)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=ncol)
    heads = [("序号", None), *((c.header, c) for c in sheet.columns)]
    for col, (head, spec) in enumerate(heads, start=1):
        cell = ws.cell(FIRST_ROW - 1, col, head)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        cell.fill = INFO_FILL if spec is None or spec.kind == "info" else HEADER_FILL
        if spec is not None and spec.kind == "info":
            cell.comment = Comment(INFO_COMMENT, "hazmon")
        ws.column_dimensions[get_column_letter(col)].width = spec.width if spec else 6
    ws.freeze_panes = ws.cell(FIRST_ROW, 1)
    for n, row in enumerate(rows, start=1):
        r = FIRST_ROW + n - 1
        ws.cell(r, 1, n).fill = INFO_FILL
        for col, spec in enumerate(sheet.columns, start=2):
            cell = ws.cell(r, col, spec.value(row))
            cell.alignment = WRAP_TOP
            if spec.as_text:
                cell.number_format = "@"
            elif spec.number_format:
                cell.number_format = spec.number_format
            if row.confidential:
                cell.fill = CONFIDENTIAL_FILL
            elif spec.kind == "info":
                cell.fill = INFO_FILL


def city_workbook(inv: Inventory, ready: list[Readiness], city: City) -> tuple[Workbook, dict[str, int]]:
    """The workbook of one city, with every enterprise of it (confidential ones marked, not left out)."""
    readiness = {r.enterprise.code: r for r in ready}
    ents = sorted((e for e in inv.enterprises if e.city == city.code), key=lambda e: e.code)
    wb = Workbook()
    _notes(wb.active, inv, city)
    wb.active.title = NOTES_SHEET
    findings: dict[str, list[Finding]] = {}
    for f in inv.report.findings:
        if f.enterprise is not None:
            findings.setdefault(f.enterprise, []).append(f)
    subjects = [(ent, record_doc(ent), readiness[ent.code], tuple(findings.get(ent.code, ()))) for ent in ents]
    counts = {}
    for sheet in SHEETS:
        rows = [row for subject in subjects for row in sheet.rows(*subject)]
        _sheet(wb.create_sheet(sheet.name), sheet, city, rows)
        counts[sheet.name] = len(rows)
    return wb, counts


def export_workbooks(root: Path | str, out: Path | str) -> list[Exported]:
    """Write one workbook per city of a valid inventory into `out`; refuse an invalid inventory."""
    inv, ready = load_valid(root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for code in sorted(inv.cities):
        city = inv.cities[code]
        wb, counts = city_workbook(inv, ready, city)
        path = out / workbook_name(city)
        wb.save(path)
        done.append(Exported(code, path, counts))
    return done
