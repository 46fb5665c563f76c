"""Read a city's survey workbook back into the inventory (R3).

All or nothing: every cell is parsed, the would-be inventory is written to a temporary copy and
validated there with every rule, and only when no cell is bad are the enterprise files replaced
(each atomically; unchanged files are not touched, so their bytes stay as they were).

What counts as bad:
- a cell that cannot be read as its column's type (rule SCHEMA), or a structural problem
  (unknown enterprise, duplicate row, missing column: rules REF, UNIQ, SCHEMA);
- a change that gives the inventory a new ERROR finding (it would no longer load);
- a change that gives it a new BLOCKER finding (e.g. V1, a camera outside 192.168.0.0/16; N2, a
  line measured below 20 Mbps), unless `accept_blockers` says the table records a real site
  condition that the inventory must now carry (an enterprise the workbook creates is not ready
  by nature: its blockers are reported as warnings).
Readiness is derived, never typed in: 就绪 in the 进度 column records the state `surveyed`, with a
READY warning when the rules do not find the enterprise ready.
Records are matched by key (enterprise code; hazard-source code, NVR or camera name within it).
Rows of unknown records add them; records left out of the workbook are kept, never deleted.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from hazmon.inventory.findings import Finding, Severity, format_path
from hazmon.inventory.loader import CITIES_DIR, PROVINCE_FILE, Inventory
from hazmon.inventory.model import Enterprise, Lifecycle
from hazmon.inventory.readiness import Readiness
from hazmon.inventory.validate import load_valid, validate
from hazmon.tables import cells, yamledit
from hazmon.tables.export import NOTE_CITY_CODE
from hazmon.tables.sheets import FIRST_ROW, NOTES_SHEET, SHEETS, Column, Path_, Sheet, get_in, record_doc

STATE = ("state",)


class WorkbookError(Exception):
    """The file is not a survey workbook at all (not XLSX, or no sheet of ours)."""


@dataclass(frozen=True, slots=True)
class Problem:
    where: str  # a cell (附件7!D5), a header row, or file:line for what no cell carries
    rule: str
    message: str

    def render(self) -> str:
        return f"{self.where}: {self.rule}: {self.message}"


@dataclass(frozen=True, slots=True)
class Change:
    code: str  # the enterprise
    path: Path_  # YAML path within the enterprise file
    value: Any  # as YAML will hold it; None removes the field
    cell: str


@dataclass(slots=True)
class Outcome:
    applied: bool = False
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # written, or that would be written
    created: list[str] = field(default_factory=list)  # enterprise codes added
    skipped_sheets: list[str] = field(default_factory=list)


class _Docs(dict[str, dict[str, Any]]):
    """Enterprise code -> its record in JSON form, dumped when a row first names it."""

    def __init__(self, ents: dict[str, Enterprise]) -> None:
        super().__init__()
        self._ents = ents

    def __missing__(self, code: str) -> dict[str, Any]:
        doc = self[code] = record_doc(self._ents[code])
        return doc

    def __contains__(self, code: object) -> bool:
        return super().__contains__(code) or code in self._ents


@dataclass(slots=True)
class _Plan:
    """What the workbook asks for, before any file is touched."""

    inv: Inventory
    city: str | None
    docs: dict[str, dict[str, Any]]  # enterprise code -> current (or empty, new) record, JSON form
    new: set[str] = field(default_factory=set)
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # (code, record path) -> the cell that names the row (its key, or its enterprise code)
    rows: dict[tuple[str, Path_], str] = field(default_factory=dict)
    ready_claims: list[tuple[str, str]] = field(default_factory=list)  # (code, cell)
    added: Counter[tuple[str, Path_]] = field(default_factory=Counter)
    seen: set[tuple[str, str, str]] = field(default_factory=set)


def _ref(sheet: str, row: int, col: int) -> str:
    return f"{sheet}!{get_column_letter(col)}{row}"


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _same(current: Any, value: Any) -> bool:
    value = _json(value)
    if isinstance(current, bool) or isinstance(value, bool):
        return current is value
    if isinstance(current, int | float) and isinstance(value, int | float):
        return float(current) == float(value)
    if isinstance(current, list) or isinstance(value, list):
        return [str(v) for v in current or []] == [str(v) for v in value or []]
    return current == value


def _city_of(wb: openpyxl.Workbook) -> str | None:
    if NOTES_SHEET not in wb.sheetnames:
        return None
    for key, value, *_ in wb[NOTES_SHEET].iter_rows(values_only=True, max_col=2):
        if key == NOTE_CITY_CODE and value is not None:
            return cells.text(value)
    return None


def _headers(ws: Worksheet, sheet: Sheet, plan: _Plan) -> dict[Column, int] | None:
    found = {cells.text(c.value): c.column for c in ws[FIRST_ROW - 1] if c.value is not None}
    out, missing = {}, []
    for col in sheet.columns:
        if col.header in found:
            out[col] = found[col.header]
        elif col.kind != "info":
            missing.append(col.header)
    if missing:
        plan.problems.append(Problem(f"{sheet.name}!{FIRST_ROW - 1}:{FIRST_ROW - 1}", "SCHEMA",
                                     f"column(s) {', '.join(missing)} missing from the header row"))
        return None
    return out


def _new_codes(wb: openpyxl.Workbook, plan: _Plan) -> None:
    """Enterprises that 附件6/附件10 rows name and the inventory does not hold yet."""
    known = {e.code for e in plan.inv.enterprises}
    for sheet in SHEETS:
        if not sheet.creates_enterprise or sheet.name not in wb.sheetnames:
            continue
        ws = wb[sheet.name]
        heads = {cells.text(c.value): c.column for c in ws[FIRST_ROW - 1] if c.value is not None}
        ent = next(c for c in sheet.columns if c.kind == "ent")
        if ent.header not in heads:
            continue
        for (value,) in ws.iter_rows(min_row=FIRST_ROW, min_col=heads[ent.header], max_col=heads[ent.header],
                                     values_only=True):
            code = cells.text(value)
            if code and code not in known:
                plan.new.add(code)


def _enterprise(plan: _Plan, sheet: Sheet, code: str, cell: str) -> bool:
    """Check the row's enterprise; start a new one when 附件6/10 create it."""
    inv = plan.inv
    ent = inv.enterprise(code) if code not in plan.new else None
    if ent is not None and ent.code == code:
        if plan.city is not None and ent.city != plan.city:
            plan.problems.append(Problem(cell, "REF", f"enterprise {code} belongs to city {ent.city}; this "
                                                      f"workbook is city {plan.city}'s"))
            return False
        return True
    if code not in plan.new:
        plan.problems.append(Problem(cell, "REF", f"enterprise {code} is not in the inventory, and no 附件6/"
                                                  "附件10 row of this workbook adds it"))
        return False
    if plan.city is None or plan.city not in inv.cities:
        plan.problems.append(Problem(cell, "REF", f"enterprise {code} is new, but the workbook's {NOTES_SHEET} "
                                                  f"sheet names no city of this inventory ({NOTE_CITY_CODE})"))
        return False
    if code not in plan.docs:
        plan.docs[code] = {}
        plan.changes += [Change(code, ("code",), code, cell), Change(code, ("city",), plan.city, cell)]
    return True


def _record(plan: _Plan, sheet: Sheet, code: str, key: str, cell: str) -> Path_:
    assert sheet.records is not None
    key_col = sheet.key_column()
    assert key_col is not None
    name = str(key_col.field[0])
    items = get_in(plan.docs[code], sheet.records) or []
    for i, item in enumerate(items):
        if item.get(name) == key:
            return (*sheet.records, i)
    # A record the inventory does not hold: add it after the existing ones.
    index = len(items) + plan.added[(code, sheet.records)]
    plan.added[(code, sheet.records)] += 1
    path = (*sheet.records, index)
    plan.changes.append(Change(code, (*path, name), key, cell))
    return path


def _row(plan: _Plan, sheet: Sheet, heads: dict[Column, int], r: int, values: dict[int, Any]) -> None:
    ent_col = next(c for c in sheet.columns if c.kind == "ent")
    code_cell = _ref(sheet.name, r, heads[ent_col])
    code = cells.text(values.get(heads[ent_col]))
    if code is None:
        plan.problems.append(Problem(code_cell, "SCHEMA", "the row names no enterprise (统一社会信用代码)"))
        return
    if not _enterprise(plan, sheet, code, code_cell):
        return
    key_col, path, row_cell = sheet.key_column(), (), code_cell
    if key_col is not None:
        row_cell = _ref(sheet.name, r, heads[key_col])
        key = cells.text(values.get(heads[key_col]))
        if key is None:
            plan.problems.append(Problem(row_cell, "SCHEMA", f"the row has no {key_col.header}"))
            return
        if (sheet.name, code, key) in plan.seen:
            plan.problems.append(Problem(row_cell, "UNIQ", f"{key_col.header} {key} of {code} appears twice"))
            return
        plan.seen.add((sheet.name, code, key))
        path = _record(plan, sheet, code, key, row_cell)
    elif (sheet.name, code, "") in plan.seen:
        plan.problems.append(Problem(row_cell, "UNIQ", f"enterprise {code} appears twice"))
        return
    else:
        plan.seen.add((sheet.name, code, ""))
    plan.rows.setdefault((code, path), row_cell)  # an enterprise's first row: 附件6 before 附件9/10
    doc = plan.docs[code]
    groups: dict[Path_, list[tuple[Column, Any, str]]] = {}
    for col in sheet.columns:
        if col.kind != "edit":
            continue
        cell = _ref(sheet.name, r, heads[col])
        try:
            value = col.parse(values.get(heads[col]))
        except cells.CellError as exc:
            plan.problems.append(Problem(cell, exc.rule, f"{col.header}: {exc.message}"))
            continue
        if col.field == STATE and value == Lifecycle.READY.value:
            plan.ready_claims.append((code, cell))
            value = Lifecycle.SURVEYED.value  # ready is derived; the recorded state stays `surveyed`
        groups.setdefault(col.group, []).append((col, value, cell))
    for group, items in groups.items():
        if group and all(v in (None, []) for _, v, _ in items):
            if get_in(doc, (*path, *group)) is not None:
                plan.changes.append(Change(code, (*path, *group), None, items[0][2]))
            continue
        for col, value, cell in items:
            full = (*path, *col.field)
            if not _same(get_in(doc, full), value):
                plan.changes.append(Change(code, full, value, cell))


def _read(wb: openpyxl.Workbook, plan: _Plan, out: Outcome) -> None:
    _new_codes(wb, plan)
    for sheet in SHEETS:
        if sheet.name not in wb.sheetnames:
            out.skipped_sheets.append(sheet.name)
            continue
        ws = wb[sheet.name]
        heads = _headers(ws, sheet, plan)
        if heads is None:
            continue
        cols = sorted(set(heads.values()))
        for r, row in enumerate(ws.iter_rows(min_row=FIRST_ROW, max_col=max(cols), values_only=True),
                                start=FIRST_ROW):
            values = {c: row[c - 1] for c in cols}
            if all(cells.blank(v) for v in values.values()):
                continue
            _row(plan, sheet, heads, r, values)


def _enterprise_file(plan: _Plan, code: str) -> Path:
    inv = plan.inv
    if code in plan.new:
        return inv.city_dirs[str(plan.city)] / "enterprises" / f"{code}.yml"
    return inv.origin_of(f"enterprise:{code}").file


def _render(plan: _Plan) -> dict[Path, tuple[str | None, str]]:
    """The new text of every file the changes touch: path -> (old text or None, new text)."""
    out: dict[Path, tuple[str | None, str]] = {}
    by_code: dict[str, list[Change]] = {}
    for change in plan.changes:
        by_code.setdefault(change.code, []).append(change)
    order = [f.alias or name for name, f in Enterprise.model_fields.items()]
    for code, changes in by_code.items():
        file = _enterprise_file(plan, code)
        old = file.read_text(encoding="utf-8") if code not in plan.new else None
        doc = yamledit.load(old) if old is not None else yamledit.CommentedMap()
        for change in changes:
            yamledit.set_in(doc, change.path, change.value)
        if old is None:
            doc = yamledit.order_like(doc, order)
        text = yamledit.dump(doc)
        if text != old:
            out[file] = (old, text)
    return out


def _key(f: Finding) -> tuple[str, str, str | None, str, str]:
    return (f.rule, str(f.severity), f.enterprise, f.path, f.message)


def _covers(outer: str, inner: str) -> bool:
    return inner == outer or not outer or inner.startswith((outer + ".", outer + "["))


def _place(plan: _Plan, f: Finding, root: Path) -> str:
    """Where a finding points in the workbook: the changed cells of its field, or its record's row
    (the row's key cell) when it is about a whole record, or file:line when no row carries it."""
    if f.enterprise is not None:
        rows = {format_path(p): cell for (code, p), cell in plan.rows.items() if code == f.enterprise}
        if f.path in rows and f.path:
            return rows[f.path]
        mine = [(format_path(c.path), c.cell) for c in plan.changes if c.code == f.enterprise]
        hits = [cell for path, cell in mine if _covers(path, f.path)] or [
            cell for path, cell in mine if _covers(f.path, path) and f.path]
        if hits:
            return ", ".join(dict.fromkeys(hits))
        holders = [(len(p), cell) for p, cell in rows.items() if _covers(p, f.path)]
        if holders:
            return max(holders)[1]
    try:
        where = str(f.file.relative_to(root))
    except ValueError:
        where = str(f.file)
    return f"{where}:{f.line}" if f.line else where


def _sheets_carrying(path: str) -> list[str]:
    """The sheets with a column for this field or for a field under it."""
    bare = re.sub(r"\[\d+\]", "", path)
    out = []
    for sheet in SHEETS:
        base = ".".join(str(p) for p in sheet.records or ())
        for col in sheet.columns:
            if col.kind in ("edit", "key") and col.field:
                full = ".".join(filter(None, (base, ".".join(str(p) for p in col.field))))
                if full == bare or full.startswith(bare + "."):
                    out.append(sheet.name)
                    break
    return out


def _hint(plan: _Plan, f: Finding) -> str:
    """What to do about a missing or malformed field the loader reports (SCHEMA)."""
    sheets = _sheets_carrying(f.path)
    if not sheets:
        return " (the tables do not carry this field: add it to the enterprise file)"
    if f.enterprise in plan.new:
        return f" (a new enterprise needs it: fill its row in {'/'.join(sheets)})"
    return ""


def _check(plan: _Plan, files: dict[Path, tuple[str | None, str]], accept_blockers: bool, out: Outcome) -> None:
    """Validate the would-be inventory in a temporary copy; new findings become problems."""
    root = plan.inv.root
    with tempfile.TemporaryDirectory(prefix="hazmon-tables-") as tmp:
        copy = Path(tmp) / root.name
        copy.mkdir()
        # Only what the loader reads (the vault never leaves its folder), as links: a copy of a
        # province's thousands of files would cost more than validating them.
        os.symlink(root / PROVINCE_FILE, copy / PROVINCE_FILE)
        shutil.copytree(root / CITIES_DIR, copy / CITIES_DIR, copy_function=os.symlink)
        for path, (_, text) in files.items():
            target = copy / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)  # drop the link first: writing through it would edit the original
            target.write_text(text, encoding="utf-8")
        after, ready = validate(copy, link_roots=(root,))  # the links lead into the inventory itself
        before = Counter(_key(f) for f in plan.inv.report.findings)
        for f in after.report.findings:
            k = _key(f)
            if before[k] > 0:
                before[k] -= 1
                continue
            message = f.message + (_hint(plan, f) if f.rule == "SCHEMA" else "")
            # A new enterprise is not ready yet by nature: its blockers list what is missing, not a bad cell.
            lenient = accept_blockers or f.enterprise in plan.new
            bad = f.severity is Severity.ERROR or (f.severity is Severity.BLOCKER and not lenient)
            target = out.problems if bad else out.warnings
            target.append(Problem(_place(plan, f, copy), f.rule, f"{f.path}: {message}" if f.path else message))
        _ready_claims(plan, ready, out)


def _ready_claims(plan: _Plan, ready: list[Readiness], out: Outcome) -> None:
    lifecycle = {r.enterprise.code: r for r in ready}
    for code, cell in plan.ready_claims:
        r = lifecycle.get(code)
        if r is not None and r.lifecycle is not Lifecycle.READY:
            held = ", ".join(sorted({b.rule for b in r.blocking})) or r.lifecycle.value
            # A warning, not a refusal: an older export of the workbook says 就绪 in good faith.
            out.warnings.append(Problem(cell, "READY", f"就绪 (ready) is derived from the rules, not typed "
                                                       f"in: {code} stays {r.lifecycle.value} (held by {held})"))


def import_workbook(workbook: Path | str, root: Path | str, *, accept_blockers: bool = False,
                    dry_run: bool = False) -> Outcome:
    """Apply a survey workbook to the inventory at `root`, or refuse it whole (see module doc)."""
    inv, ready = load_valid(root)
    try:
        wb = openpyxl.load_workbook(workbook, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, ValueError... on a foreign file
        raise WorkbookError(f"{workbook}: not a readable XLSX workbook ({exc})") from exc
    if not set(wb.sheetnames) & {s.name for s in SHEETS}:
        raise WorkbookError(f"{workbook}: none of the sheets {', '.join(s.name for s in SHEETS)} is in it")
    plan = _Plan(inv, _city_of(wb), _Docs({e.code: e for e in inv.enterprises}))
    out = Outcome()
    _read(wb, plan, out)
    out.problems += plan.problems
    out.changes = plan.changes
    out.created = sorted(plan.new & set(plan.docs))
    if out.problems:
        return out
    files = _render(plan)
    out.files = sorted(files)
    if files:
        _check(plan, files, accept_blockers, out)
    else:  # nothing to write (a round trip): the inventory is the one load_valid just checked
        _ready_claims(plan, ready, out)
    if out.problems or dry_run:
        return out
    for path, (old, _) in files.items():
        now = path.read_text(encoding="utf-8") if path.exists() else None
        if now != old:
            out.problems.append(Problem(str(path), "CONFLICT", "the file changed while the workbook was being "
                                                               "checked; nothing was written: run the import again"))
    if out.problems:
        return out
    for path, (_, text) in files.items():
        yamledit.write_atomic(path, text)
    out.applied = True
    return out
