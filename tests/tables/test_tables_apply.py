"""Acceptance 3 (R3): a valid edit of a workbook is applied to the YAML and shows in the model."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from tables_helpers import Book, snapshot

from hazmon.cli.main import main
from hazmon.inventory.validate import load_valid
from hazmon.tables.importer import import_workbook


def _set(book: Book, sheet: str, values: dict[str, object], **keys: str) -> None:
    wb = book.open()
    ws = wb[sheet]
    for header, value in values.items():
        r, c = book.find(ws, header, **keys)
        ws.cell(r, c).value = value
    wb.save(book.path)


def test_measured_bandwidth_update_is_applied(lab_copy: Path, books: dict[str, Book],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    city, book = next(iter(books.items()))
    inv, _ = load_valid(lab_copy)
    ent = next(e for e in inv.enterprises if e.city == city)
    file = inv.origin_of(f"enterprise:{ent.code}").file
    comments = [line for line in file.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("#")]
    before = snapshot(lab_copy)
    _set(book, "附件10", {"专线实测带宽（Mbps）": 23.7, "测量日期": "2026-12-01"}, 统一社会信用代码=ent.code)

    assert main(["tables", "import", str(book.path), "--into", str(lab_copy)]) == 0
    assert "附件10!" in capsys.readouterr().out

    inv, _ = load_valid(lab_copy)
    line = inv.enterprise(ent.code).line
    assert (line.measured_mbps, line.measured_on) == (23.7, date(2026, 12, 1))
    after = snapshot(lab_copy)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {str(file.relative_to(lab_copy))}
    text = file.read_text(encoding="utf-8")
    assert all(c in text.splitlines() for c in comments)  # ruamel round trip keeps the comments
    assert "measured_mbps: 23.7" in text


def test_dry_run_writes_nothing(lab_copy: Path, books: dict[str, Book]) -> None:
    city, book = next(iter(books.items()))
    ent = next(e for e in load_valid(lab_copy)[0].enterprises if e.city == city)
    _set(book, "附件10", {"专线实测带宽（Mbps）": 31}, 统一社会信用代码=ent.code)
    before = snapshot(lab_copy)
    outcome = import_workbook(book.path, lab_copy, dry_run=True)
    assert not outcome.applied and not outcome.problems and len(outcome.changes) == 1
    assert snapshot(lab_copy) == before


def test_survey_fields_of_every_table_are_applied(lab_copy: Path, books: dict[str, Book]) -> None:
    city, book = next(iter(books.items()))
    inv, _ = load_valid(lab_copy)
    ent = next(e for e in inv.enterprises if e.city == city and e.cameras and e.devices.nvrs and e.hazard_sources)
    nvr, cam, src = ent.devices.nvrs[0], ent.cameras[0], ent.hazard_sources[0]
    code = {"统一社会信用代码": ent.code}
    _set(book, "附件6", {"企业名称": ent.name + "（更名）", "批次": 3}, **code)
    _set(book, "附件7", {"型号": "DS-TEST-1", "通道数": nvr.channels + 8}, **code, NVR名称=nvr.name)
    _set(book, "附件8", {"IP地址（V1）": "192.168.200.9"}, **code, 摄像头名称=cam.name)
    _set(book, "附件9", {"AI盒子序列号": "AIB-NEW-9"}, **code)
    _set(book, "附件3", {"危险源名称": src.name + "（新）"}, **code, 危险源编码=src.code)
    _set(book, "附件10", {"运营商": "中国移动", "电路编号": "NEW-0001"}, **code)
    outcome = import_workbook(book.path, lab_copy)
    assert outcome.applied, [p.render() for p in outcome.problems]
    got = load_valid(lab_copy)[0].enterprise(ent.code)
    assert got.name == ent.name + "（更名）" and got.batch == 3
    assert got.devices.nvrs[0].model == "DS-TEST-1" and got.devices.nvrs[0].channels == nvr.channels + 8
    assert str(got.cameras[0].address) == "192.168.200.9"
    assert got.devices.ai_box is not None and got.devices.ai_box.serial == "AIB-NEW-9"
    assert got.hazard_sources[0].name == src.name + "（新）"
    assert (got.line.carrier, got.line.circuit_id) == ("中国移动", "NEW-0001")
    # Nothing else moved: the rest of the enterprise is as it was.
    strip = {"name", "batch", "devices", "cameras", "hazard_sources", "line"}
    assert got.model_dump(exclude=strip) == ent.model_dump(exclude=strip)


def test_registration_mismatch_is_a_blocker_to_accept(lab_copy: Path, books: dict[str, Book]) -> None:
    """附件3 reports what the registration system holds; a disagreement (R1) holds the enterprise back."""
    city, book = next(iter(books.items()))
    inv, _ = load_valid(lab_copy)
    ent = next(e for e in inv.enterprises if e.city == city and e.hazard_sources)
    src = ent.hazard_sources[0]
    keys = {"统一社会信用代码": ent.code, "危险源编码": src.code}
    _set(book, "附件3", {"登记系统·等级": src.grade % 4 + 1}, **keys)
    refused = import_workbook(book.path, lab_copy)
    assert [p.rule for p in refused.problems] == ["R1"] and refused.problems[0].where.startswith("附件3!")
    assert import_workbook(book.path, lab_copy, accept_blockers=True).applied
    got = load_valid(lab_copy)[0].enterprise(ent.code).hazard_sources[0].registration.registry
    assert got is not None and got.grade == src.grade % 4 + 1
    # Clearing a system's three cells says the source is not recorded there: the record goes.
    _set(book, "附件3", {"登记系统·类别": None, "登记系统·等级": None, "登记系统·重点监管工艺": None}, **keys)
    assert import_workbook(book.path, lab_copy, accept_blockers=True).applied
    assert load_valid(lab_copy)[0].enterprise(ent.code).hazard_sources[0].registration.registry is None


def test_new_enterprise_from_attachments_6_and_10(lab_copy: Path, books: dict[str, Book]) -> None:
    city, book = next(iter(books.items()))
    code = f"9151{city[2:]}00MA00000017"
    wb = book.open()
    w6, w10 = wb["附件6"], wb["附件10"]
    row6 = {"统一社会信用代码": code, "企业名称": "新建烟花有限公司", "联网类别": "烟花爆竹", "批次": 2,
            "企业标注（R4）": "计划投产", "接入路由（S3）": "经市州", "进度": "已调研"}
    row10 = {"统一社会信用代码": code, "专线签约带宽（Mbps，N2）": 20, "运营商": "中国电信",
             "机房至中控室链路数（N3）": 1, "机柜空余U数（N5）": 16}
    for ws, row in ((w6, row6), (w10, row10)):
        r = ws.max_row + 1
        for header, value in row.items():
            ws.cell(r, Book.column(ws, header), value)
    wb.save(book.path)
    outcome = import_workbook(book.path, lab_copy)
    assert outcome.applied and outcome.created == [code], [p.render() for p in outcome.problems]
    inv, ready = load_valid(lab_copy)
    ent = inv.enterprise(code)
    assert ent is not None and ent.city == city and ent.name == "新建烟花有限公司"
    assert ent.line.contracted_mbps == 20 and ent.site.cabinet_units_free == 16
    assert [a.value for a in ent.annotations] == ["planned_production"]
    file = inv.origin_of(f"enterprise:{code}").file
    assert file.parent.parent == inv.city_dirs[city] and file.name == f"{code}.yml"
    assert f'city: "{city}"' in file.read_text(encoding="utf-8")
    assert not next(r for r in ready if r.enterprise.code == code).ready  # no devices yet: not ready


def test_new_enterprise_without_its_circuit_row_is_refused(lab_copy: Path, books: dict[str, Book]) -> None:
    city, book = next(iter(books.items()))
    wb = book.open()
    ws = wb["附件6"]
    r = ws.max_row + 1
    ws.cell(r, Book.column(ws, "统一社会信用代码"), f"9151{city[2:]}00MA00000025")
    ws.cell(r, Book.column(ws, "企业名称"), "半截公司")
    ws.cell(r, Book.column(ws, "联网类别"), "尾矿库")
    wb.save(book.path)
    before = snapshot(lab_copy)
    outcome = import_workbook(book.path, lab_copy)
    assert not outcome.applied
    fields = {p.message.split(":")[0] for p in outcome.problems}
    assert {"line", "site"} <= fields and all(p.rule == "SCHEMA" for p in outcome.problems)
    assert all("附件10" in p.message for p in outcome.problems)
    assert all(p.where.startswith("附件6!B") for p in outcome.problems)
    assert snapshot(lab_copy) == before
