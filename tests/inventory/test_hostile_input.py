"""Malformed and hostile inventory input: each is a finding (file, line, field, rule, a sentence),
never a traceback, a hang or a memory blow-up, and nothing vanishes without an error naming it.

Each test starts from a copy of inventories/lab and breaks one thing. Inputs that made the loader
hang or eat memory are validated in a child process under a time and memory bound, so that a
regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hazmon.inventory.files import MAX_ALIAS_VALUES, MAX_CELL_CHARS, MAX_DEPTH, MAX_FILE_BYTES
from hazmon.inventory.findings import Finding, InventoryError
from hazmon.inventory.fuzz import unprivileged
from hazmon.inventory.validate import load_valid, validate

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
CD = "cities/5101-chengdu"
CHEM = f"{CD}/enterprises/labe0001-chem.yml"
DEPOT = f"{CD}/enterprises/labe0004-depot.yml"
DEPOT_CSV = f"{CD}/enterprises/labe0004-depot.tags.csv"
OPC = "cities/5105-luzhou/enterprises/labe0002-opc.yml"
ENTERPRISES = 7
TAG_TABLE_LINE = 46  # `tag_table:` in labe0004-depot.yml


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    root = tmp_path / "lab"
    shutil.copytree(LAB, root, ignore=shutil.ignore_patterns(".vault-pass", "group_vars"))
    return root


def _edit(root: Path, rel: str, old: str, new: str, count: int = 1) -> int:
    """Replace `old` (a regular expression matched at least once) and return the line it was on."""
    path = root / rel
    text = path.read_text(encoding="utf-8")
    match = re.search(old, text)
    assert match, f"{old!r} not in {rel}"
    path.write_text(re.sub(old, lambda _: new, text, count=count), encoding="utf-8")
    return text[: match.start()].count("\n") + 1


def _errors(root: Path, rel: str | None = None) -> tuple[int, list[Finding]]:
    inv, _ = validate(root)
    errors = [f for f in inv.report.errors if rel is None or f.file == root / rel]
    return len(inv.enterprises), errors


_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a blow-up fails fast, not the machine
from hazmon.inventory.validate import validate
inv, _ = validate(sys.argv[1])
print(json.dumps({"enterprises": len(inv.enterprises),
                  "errors": [f.as_dict() for f in inv.report.errors],
                  "text": "\n".join(f.render(inv.root) for f in inv.report.findings)}, ensure_ascii=False))
"""


def _outcome(root: Path, *, child: bool = False, as_operator: bool = False, timeout: float = 60) -> dict:
    """Validate here, or in a child process (`child`) for input that once hung or ate memory: there a
    hang (beyond `timeout`) or a crash fails the test. `as_operator` (a child): without root's power
    to read any file, so that permissions apply."""
    if not (child or as_operator):
        inv, _ = validate(root)
        return {"enterprises": len(inv.enterprises), "errors": [f.as_dict() for f in inv.report.errors],
                "text": "\n".join(f.render(inv.root) for f in inv.report.findings)}
    cmd = [sys.executable, "-c", _CHILD, str(root)]
    if as_operator:
        cmd = [*unprivileged(), *cmd]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"validation did not finish within {timeout} s (a hang)")
    assert out.returncode == 0, f"validation crashed:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout)


def _hits(result: dict, rel_or_path: str | Path, rule: str | None = None) -> list[dict]:
    return [e for e in result["errors"] if e["file"] == str(rel_or_path) and (rule is None or e["rule"] == rule)]


# ---------------------------------------------------------------- encodings


@pytest.mark.parametrize("encoding,unit", [("gbk", "°C"), ("gb18030", "m³")])
def test_a_tag_table_in_gbk_or_gb18030_is_read_as_such(lab: Path, encoding: str, unit: str) -> None:
    table = lab / DEPOT_CSV
    text = table.read_text(encoding="utf-8").replace(",m,0,22,", f",{unit},0,22,", 1)
    table.write_bytes(text.encode(encoding))
    n, errors = _errors(lab)
    assert errors == [] and n == ENTERPRISES
    inv, _ = validate(lab)
    depot = inv.enterprise("labe0004")
    assert depot is not None and unit in {t.unit for t in depot.data_sources[0].tags}


def test_a_tag_table_in_utf16_with_a_bom_is_read(lab: Path) -> None:
    table = lab / DEPOT_CSV
    table.write_bytes(table.read_text(encoding="utf-8").encode("utf-16"))
    assert _errors(lab) == (ENTERPRISES, [])


def test_utf8_with_a_bom_is_read_everywhere(lab: Path) -> None:
    for rel in (CHEM, DEPOT_CSV, f"{CD}/city.yml", "province.yml"):
        path = lab / rel
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _errors(lab) == (ENTERPRISES, [])


@pytest.mark.parametrize("encoding,line,words", [
    ("gbk", 3, "not UTF-8"), ("gb18030", 3, "not UTF-8"), ("utf-16", 1, "UTF-16"), ("utf-32", 1, "UTF-32"),
    ("utf-16-le", None, "NUL"),  # no byte-order mark
])
def test_a_yaml_file_not_in_utf8_is_a_finding(lab: Path, encoding: str, line: int | None, words: str) -> None:
    path = lab / CHEM
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))
    n, errors = _errors(lab, CHEM)
    assert n == ENTERPRISES - 1 and len(errors) == 1
    assert errors[0].rule == "SCHEMA" and words in errors[0].message and "UTF-8" in errors[0].message
    assert line is None or errors[0].line == line


def test_a_tag_table_in_no_known_encoding_is_a_finding(lab: Path) -> None:
    table = lab / DEPOT_CSV
    table.write_bytes(table.read_bytes().replace(b"level", b"lev\xffel", 1))
    _, errors = _errors(lab, DEPOT_CSV)
    assert [(e.rule, e.line) for e in errors] == [("SCHEMA", 2)] and "GB18030" in errors[0].message


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("date", ["2026-02-30", "2026-13-01", "2026-11-01 10:00:00 +99:00"])
def test_an_impossible_date_is_a_finding(lab: Path, date: str) -> None:
    line = _edit(lab, CHEM, r"measured_on: 2026-11-01", f"measured_on: {date}")
    n, errors = _errors(lab, CHEM)
    assert n == ENTERPRISES - 1
    assert [(e.rule, e.line) for e in errors] == [("SCHEMA", line)] and date.split()[0] in errors[0].message


def test_a_huge_integer_is_a_finding(lab: Path) -> None:
    line = _edit(lab, CHEM, r"batch: 1", "batch: " + "9" * 5000)
    _, errors = _errors(lab, CHEM)
    assert [(e.rule, e.line) for e in errors] == [("SCHEMA", line)]
    assert len(errors[0].message) < 300  # the value is not quoted whole


@pytest.mark.parametrize("old,new,field", [
    (r"type: int16, scale: 0.1,", "type: int16, scale: .nan,", "scale"),
    (r"type: int16, scale: 0.1,", "type: int16, scale: .inf,", "scale"),
    (r"unit: m3/h, range_min: 0, range_max: 500\}", "unit: m3/h, range_min: 0, range_max: .nan}", "range_max"),
    (r"range_max: 2.5, alarm_high: 1.6", "range_max: 2.5, alarm_high: -.inf", "alarm_high"),
    (r"contracted_mbps: 20,", "contracted_mbps: 1e400,", "contracted_mbps"),
])
def test_nan_and_infinite_numbers_are_findings(lab: Path, old: str, new: str, field: str) -> None:
    line = _edit(lab, CHEM, old, new)
    _, errors = _errors(lab, CHEM)
    assert [(e.rule, e.line) for e in errors] == [("SCHEMA", line)]
    assert errors[0].path.endswith(field) and "finite" in errors[0].message


def test_nan_in_a_tag_table_is_a_finding(lab: Path) -> None:
    _edit(lab, DEPOT_CSV, r"LT-502,HS-0004-TK,level,2,holding,float32,,,,,m,0,22,",
          "LT-502,HS-0004-TK,level,2,holding,float32,,,,,m,0,nan,")
    _, errors = _errors(lab, DEPOT_CSV)
    assert [(e.rule, e.line, e.path) for e in errors] == [("SCHEMA", 3, "data_sources[0].tags[1].range_max")]


def test_a_scale_too_small_for_the_range_is_a_tag_finding(lab: Path) -> None:
    line = _edit(lab, CHEM, r"type: int16, scale: 0.1,", "type: int16, scale: 1e-320,")
    _, errors = _errors(lab, CHEM)
    assert [(e.rule, e.line, e.path) for e in errors] == [("TAG", line, "data_sources[0].tags[1].type")]


# ---------------------------------------------------------------- structure and bounds


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 600, 5000])
def test_deep_nesting_is_a_finding(lab: Path, depth: int) -> None:
    path = lab / CHEM
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "pipelines: " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
    line = text.count("\n") + 1
    _, errors = _errors(lab, CHEM)
    assert [(e.rule, e.line) for e in errors] == [("SCHEMA", line)] and "nest" in errors[0].message


def test_nesting_within_the_bound_is_the_models_business(lab: Path) -> None:
    path = lab / CHEM
    depth = MAX_DEPTH - 2
    path.write_text(path.read_text(encoding="utf-8") + "pipelines: " + "[" * depth + "]" * depth + "\n",
                    encoding="utf-8")
    _, errors = _errors(lab, CHEM)
    assert errors and all(e.rule == "SCHEMA" and e.path.startswith("pipelines") for e in errors)


@pytest.mark.parametrize("width,line", [(MAX_CELL_CHARS + 1, 3), (200_000, 2)])
def test_a_huge_tag_table_cell_is_a_finding(lab: Path, width: int, line: int) -> None:
    code = "LT-502" if line == 3 else "LT-501"
    _edit(lab, DEPOT_CSV, code, "X" * width)
    n, errors = _errors(lab, DEPOT_CSV)
    assert [(e.rule, e.line) for e in errors] == [("SCHEMA", line)] and "cell" in errors[0].message
    assert n == ENTERPRISES and len(errors[0].message) < 300


_BOMB = "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))


def test_an_alias_bomb_is_refused_at_once(lab: Path) -> None:
    path = lab / CHEM
    path.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + _BOMB + path.read_text(encoding="utf-8"),
                    encoding="utf-8")
    result = _outcome(lab, child=True)
    hits = _hits(result, lab / CHEM)
    assert len(hits) == 1 and hits[0]["rule"] == "SCHEMA" and "alias" in hits[0]["message"]
    assert f"{MAX_ALIAS_VALUES:,}" in hits[0]["message"]


def test_an_alias_that_contains_itself_is_a_finding(lab: Path) -> None:
    path = lab / CHEM
    path.write_text(path.read_text(encoding="utf-8") + "pipelines: &p [*p]\n", encoding="utf-8")
    _, errors = _errors(lab, CHEM)
    assert [e.rule for e in errors] == ["SCHEMA"] and "contains it" in errors[0].message


def test_aliases_within_the_bound_are_fine(lab: Path) -> None:
    _edit(lab, CHEM, r"registry: \{class: 罐区, grade: 2\}\n      platform: \{class: 罐区, grade: 2\}",
          "registry: &tk {class: 罐区, grade: 2}\n      platform: *tk")
    assert _errors(lab, CHEM) == (ENTERPRISES, [])


@pytest.mark.parametrize("old,new,key", [
    (r"batch: 1\n", "batch: 1\nbatch: 2\n", "batch"),  # top level
    (r"control_room_links: 3,", "control_room_links: 3, control_room_links: 1,", "control_room_links"),  # flow
    (r"      vendor: hikvision\n", "      vendor: hikvision\n      vendor: dahua\n", "vendor"),  # nested block
    (r"\{code: PT-101, hazard_source: HS-0001-TK,", "{code: PT-101, hazard_source: HS-0001-TK, code: PT-102,",
     "code"),  # a tag
])
def test_a_duplicate_key_is_an_error_at_any_level(lab: Path, old: str, new: str, key: str) -> None:
    line = _edit(lab, CHEM, old, new)
    n, errors = _errors(lab, CHEM)
    assert n == ENTERPRISES - 1
    assert [e.rule for e in errors] == ["SCHEMA"] and f"'{key}' appears twice" in errors[0].message
    assert errors[0].line in (line, line + 1) and errors[0].path.endswith(key)


def test_a_duplicate_column_of_a_tag_table_is_an_error(lab: Path) -> None:
    _edit(lab, DEPOT_CSV, r"^code,hazard_source,kind,register,", "code,hazard_source,kind,register,kind,")
    _, errors = _errors(lab, DEPOT_CSV)
    assert [(e.rule, e.line) for e in errors] == [("SCHEMA", 1)] and "'kind' appears twice" in errors[0].message


@pytest.mark.parametrize("content", ["", "# a comment only\n", "\n\n   \n", "---\n", "~\n"])
def test_an_empty_enterprise_file_is_an_error(lab: Path, content: str) -> None:
    (lab / CHEM).write_text(content, encoding="utf-8")
    n, errors = _errors(lab, CHEM)
    assert n == ENTERPRISES - 1
    assert [e.rule for e in errors] == ["SCHEMA"] and "empty" in errors[0].message
    # ...so that nothing downstream (the province play's broker accounts) runs without it.
    with pytest.raises(InventoryError):
        load_valid(lab)


@pytest.mark.parametrize("rel", [f"{CD}/city.yml", "province.yml"])
def test_an_empty_city_or_province_file_is_an_error(lab: Path, rel: str) -> None:
    (lab / rel).write_text("# nothing yet\n", encoding="utf-8")
    _, errors = _errors(lab, rel)
    assert [e.rule for e in errors] == ["SCHEMA"] and "empty" in errors[0].message


def test_a_yaml_extension_is_not_silently_skipped(lab: Path) -> None:
    (lab / CHEM).rename(lab / CHEM.replace(".yml", ".yaml"))
    n, errors = _errors(lab, CHEM.replace(".yml", ".yaml"))
    assert n == ENTERPRISES - 1 and [e.rule for e in errors] == ["SCHEMA"] and ".yml" in errors[0].message


def test_two_enterprises_of_one_name_may_not_share_a_gateway_address(lab: Path) -> None:
    _edit(lab, OPC, r"(?m)^name: .*$", "name: 成都实验化工有限公司")
    line = _edit(lab, OPC, r"access_gateway: \{address: 198\.19\.2\.2,", "access_gateway: {address: 198.19.1.2,")
    _, errors = _errors(lab, OPC)
    assert [(e.rule, e.line) for e in errors] == [("ADDR", line)] and "91510100MALABE0001" in errors[0].message


# ---------------------------------------------------------------- where files may be


def _point_tag_table(root: Path, target: str) -> None:
    _edit(root, DEPOT, r"tag_table: labe0004-depot\.tags\.csv", f"tag_table: {json.dumps(target)}")


SECRET = "SECRET-FIRST-LINE-4f1c"


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "symlinked-folder"])
def test_a_tag_table_outside_the_inventory_is_refused_and_not_read(lab: Path, how: str) -> None:
    outside = lab.parent / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(f"{SECRET},b\n1,2\n", encoding="utf-8")
    folder = lab / CD / "enterprises"
    if how == "dotdot":
        _point_tag_table(lab, "../../../../outside/secret.csv")
    elif how == "absolute":
        _point_tag_table(lab, str(outside / "secret.csv"))
    elif how == "symlink":
        (folder / "link.csv").symlink_to(outside / "secret.csv")
        _point_tag_table(lab, "link.csv")
    else:
        (folder / "shared").symlink_to(outside)
        _point_tag_table(lab, "shared/secret.csv")
    result = _outcome(lab)
    hits = _hits(result, lab / DEPOT, "REF")
    assert [h["line"] for h in hits] == [TAG_TABLE_LINE] and hits[0]["path"] == "data_sources[0].tag_table"
    assert SECRET not in json.dumps(result, ensure_ascii=False)


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "link-to-dev-zero", "fifo", "device", "folder",
                                  "huge"])
def test_a_tag_table_that_is_not_a_bounded_regular_file_is_refused(lab: Path, kind: str) -> None:
    folder = lab / CD / "enterprises"
    target = folder / "odd.csv"
    if kind.startswith("/dev/"):
        _point_tag_table(lab, kind)
    else:
        _point_tag_table(lab, "odd.csv")
        if kind == "link-to-dev-zero":
            target.symlink_to("/dev/zero")
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "device":
            try:
                os.mknod(target, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers
            except PermissionError:  # no CAP_MKNOD here: the other kind of file that never ends
                os.mkfifo(target)
        elif kind == "folder":
            target.mkdir()
        else:
            with target.open("wb") as fh:  # sparse: no disk used
                fh.truncate(MAX_FILE_BYTES + 1)
    # The device and the FIFO once hung the loader or ate its memory: validated in a child.
    result = _outcome(lab, child=kind not in ("folder", "huge"))
    hits = _hits(result, lab / DEPOT)
    assert [(h["rule"], h["line"]) for h in hits if h["path"].endswith("tag_table")] in (
        [("REF", TAG_TABLE_LINE)], [("SCHEMA", TAG_TABLE_LINE)])
    assert result["enterprises"] == ENTERPRISES  # the enterprise stays, without those tags (and says so)


@pytest.mark.parametrize("kind", ["fifo", "folder", "link-outside", "link-to-dev-zero", "unreadable", "loop"])
def test_an_enterprise_file_that_cannot_be_read_is_an_error_naming_it(lab: Path, kind: str) -> None:
    path = lab / CHEM
    outside = lab.parent / "elsewhere.yml"
    shutil.copy(path, outside)
    if kind != "unreadable":
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "link-outside":
        path.symlink_to(outside)
    elif kind == "link-to-dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "loop":
        path.symlink_to(path.name)
    else:
        path.chmod(0)
    result = _outcome(lab, child=kind in ("fifo", "link-to-dev-zero"), as_operator=kind == "unreadable")
    assert result["enterprises"] == ENTERPRISES - 1
    assert len(_hits(result, path)) == 1, result["errors"]


def test_an_enterprises_folder_that_cannot_be_listed_is_an_error(lab: Path) -> None:
    folder = lab / CD / "enterprises"
    folder.chmod(0)
    try:
        result = _outcome(lab, as_operator=True)
    finally:
        folder.chmod(0o755)
    assert len(_hits(result, folder, "SCHEMA")) == 1
    assert result["enterprises"] == 3  # Luzhou's


def test_a_symlinked_folder_of_enterprises_is_not_silently_skipped(lab: Path) -> None:
    folder = lab / CD / "enterprises"
    other = lab.parent / "more"
    other.mkdir()
    (folder / "more").symlink_to(other)
    _, errors = _errors(lab, f"{CD}/enterprises/more")
    assert [e.rule for e in errors] == ["SCHEMA"] and "not followed" in errors[0].message


# ---------------------------------------------------------------- what a finding shows


def test_findings_are_one_printable_line(lab: Path) -> None:
    # A tag code with an escape sequence and a line break, in a finding that names the code.
    _edit(lab, CHEM, r"\{code: LT-101, hazard_source: HS-0001-TK,", '{code: "LT-\\e[2J\\n101", hazard_source: HS-X,')
    inv, _ = validate(lab)
    text = [f.render(inv.root) for f in inv.report.findings if f.rule == "REF"]
    assert any("LT-\\x1b[2J\\x0a101" in line for line in text), text
    assert not any(ch in line for line in text for ch in "\x1b\n\r")


def test_invisible_characters_are_shown_in_findings(lab: Path) -> None:
    # A byte-order mark inside a key, and a right-to-left override in a value a finding quotes.
    _edit(lab, CHEM, r"(?m)^batch: 1$", '"\\ufeffbatch": 1')  # YAML's escape, in double quotes
    _edit(lab, OPC, r"nvr: nvr1, channel: 2,", "nvr: \u202envr1, channel: 2,")
    inv, _ = validate(lab)
    text = "\n".join(f.render(inv.root) for f in inv.report.findings)
    assert "[\\ufeffbatch]" in text and "\\u202envr1" in text
    assert "\ufeff" not in text and "\u202e" not in text


def test_symbolic_links_within_the_inventory_are_followed(lab: Path) -> None:
    shared = lab / "shared"
    shared.mkdir()
    (lab / CHEM).rename(shared / "chem.yml")
    (lab / CHEM).symlink_to(os.path.relpath(shared / "chem.yml", (lab / CHEM).parent))
    (lab / DEPOT_CSV).rename(shared / "depot.csv")
    (lab / DEPOT_CSV).symlink_to(shared / "depot.csv")
    assert _errors(lab) == (ENTERPRISES, [])
