"""Every rule, fed a minimally wrong copy of the lab inventory.

Each case edits one line of one file; the test then runs `hazmon inventory validate --json`
and checks the exit status, the rule ID, the file and the line the finding points at.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from hazmon.cli.main import main

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
CD = "cities/5101-chengdu"
LZ = "cities/5105-luzhou"
CHEM = f"{CD}/enterprises/labe0001-chem.yml"
OPC = f"{LZ}/enterprises/labe0002-opc.yml"
RTU = f"{LZ}/enterprises/labe0003-rtu.yml"
DEPOT = f"{CD}/enterprises/labe0004-depot.yml"
DEPOT_CSV = f"{CD}/enterprises/labe0004-depot.tags.csv"
FW = f"{LZ}/enterprises/labe0005-fireworks.yml"
SHUT = f"{CD}/enterprises/labe0007-shutdown.yml"


@dataclass(frozen=True)
class Case:
    rule: str
    severity: str  # error or blocker
    file: str
    old: str  # a regular expression matched once in the file
    new: str  # its replacement; the finding must point at the line where it lands
    line_of: str | None = None  # text whose line the finding points at, if not `new`


CASES = [
    Case("N1", "error", f"{CD}/city.yml", r"contracted_mbps: 100", "contracted_mbps: 50"),
    Case("N1", "blocker", f"{CD}/city.yml", r"measured_mbps: 100", "measured_mbps: 80"),
    Case("N2", "error", CHEM, r"contracted_mbps: 20", "contracted_mbps: 10"),
    Case("N2", "blocker", CHEM, r"measured_mbps: 20,", "measured_mbps: 15,"),
    Case("N3", "blocker", CHEM, r"control_room_links: 3", "control_room_links: 0"),
    Case("N3", "error", CHEM, r"control_room_links: 3", "control_room_links: 2"),
    Case("N4", "blocker", CHEM, r"  daq_gateway: \{[^\n]*\}\n", "", line_of="devices:"),
    Case("N5", "blocker", CHEM, r"cabinet_units_free: 16", "cabinet_units_free: 12"),
    Case("N6", "blocker", CHEM, r"- \{name: GigabitEthernet0/0/3\}\n      - \{name: GigabitEthernet0/0/4\}",
         "- {name: GigabitEthernet0/0/3, connected: scada}\n      - {name: GigabitEthernet0/0/4, connected: printer}",
         line_of="    ports:"),
    # The notice's own example (V1): a camera at 10.23.1.3.
    Case("V1", "blocker", CHEM, r"address: 192\.168\.1\.12", "address: 10.23.1.3"),
    Case("V2", "blocker", CHEM, r"gb28181: true", "gb28181: false"),
    Case("V4", "blocker", FW, r"  - \{name: cam-dry[^\n]*\n", "", line_of="cameras:"),
    Case("V5", "blocker", CHEM, r"  - \{name: cam-duty[^\n]*\n", "", line_of="cameras:"),
    Case("V5", "blocker", CHEM, r"location: tank_farm, covers: HS-0001-TK", "location: tank_farm",
         line_of="  - code: HS-0001-TK"),
    Case("D1", "blocker", SHUT, r"data_sources:\n(.|\n)*", "", line_of="code: 91510100MALABE0007"),
    Case("D1a", "error", OPC, r"      credential: vault_opc_labe0002\n", "", line_of="    opc:"),
    Case("D1a", "blocker", OPC, r"bridge_installed: true", "bridge_installed: false"),
    Case("D1b", "error", RTU, r"baud: 9600, ", "", line_of="    serial:"),
    Case("D1c", "error", CHEM, r"    port: 502\n", "", line_of="  - name: dcs"),
    Case("D1c", "error", CHEM, r"\{code: TT-101, hazard_source: HS-0001-TK, kind: temperature, register: 2,",
         "{code: TT-101, hazard_source: HS-0001-TK, kind: temperature,"),
    Case("R1", "blocker", CHEM, r"registry: \{class: 罐区, grade: 2\}", "registry: {class: 罐区, grade: 3}"),
    Case("R1", "blocker", CHEM, r"      platform: \{class: 罐区, grade: 2\}\n", "",
         line_of="    registration:"),
    Case("R2", "error", CHEM, r"    class: 罐区\n", "    class: 储罐\n"),
    Case("R2", "error", CHEM, r"    key_processes: \[加氢工艺\]", "    key_processes: [加氢]"),
    Case("R4", "error", SHUT, r"annotations: \[long_term_shutdown\]",
         "annotations: [long_term_shutdown, planned_production]"),
    Case("R4", "blocker", CHEM, r"batch: 1\n", "batch: 1\nannotations: [long_term_shutdown]\n",
         line_of="annotations:"),
    Case("R5", "error", RTU, r"    repair_team: [^\n]*\n", "", line_of="  - name: 液氨输送管道"),
    Case("S3", "error", DEPOT, r"parent_company: 中国石油天然气股份有限公司四川销售分公司",
         "parent_company: 某石油公司"),
    Case("GB28181", "error", CHEM, r'device_id: "51010000001186000001"', 'device_id: "51050000001186000001"'),
    Case("GB28181", "error", CHEM, r'channel_id: "51010000001326000002"', 'channel_id: "51010000001186000009"'),
    Case("GB28181", "error", "province.yml", r'domain: "5100000000"', 'domain: "5101000000"'),
    Case("GB28181", "error", OPC, r'channel_id: "51050000001326000002"', 'channel_id: "51050000001326000001"'),
    Case("GB50493", "error", CHEM, r"range_max: 100, alarm_high: 25, alarm_high_high: 50\}",
         "range_max: 100, alarm_high: 30, alarm_high_high: 50}"),
    Case("GB50493", "error", RTU, r"alarm_low: 19\.5", "alarm_low: 18"),
    Case("REGMAP", "error", CHEM, r"code: TT-201, hazard_source: HS-0001-U1, kind: temperature, register: 6,",
         "code: TT-201, hazard_source: HS-0001-U1, kind: temperature, register: 5,"),
    Case("UNIQ", "error", CHEM, r"\{code: PT-101,", "{code: LT-101,"),
    Case("ADDR", "error", CHEM, r"ai_box: \{address: 198\.19\.1\.4,", "ai_box: {address: 198.19.1.3,"),
    Case("ADDR", "error", OPC, r"access_gateway: \{address: 198\.19\.2\.2,", "access_gateway: {address: 198.19.1.2,"),
    Case("REF", "error", CHEM, r"nvr: nvr1, channel: 2,", "nvr: nvr9, channel: 2,"),
    Case("REF", "error", CHEM, r'city: "5101"', 'city: "5105"'),
    Case("SCHEMA", "error", CHEM, r"site: \{control_room_links: 3,", "site: {control_room_lnks: 3,",
         line_of="site:"),
    Case("SCHEMA", "error", CHEM, r"channels: 16", "channels: sixteen"),
    # Readiness is derived, never typed in.
    Case("SCHEMA", "error", CHEM, r"batch: 1\n", "batch: 1\nready: true\n", line_of="ready: true"),
    # A register type that cannot carry the instrument range: flow 0..500 at scale 0.01 needs 50,000.
    Case("TAG", "error", CHEM, r"\{code: FT-101, hazard_source: HS-0001-TK, kind: flow, register: 4, type: uint32,",
         "{code: FT-101, hazard_source: HS-0001-TK, kind: flow, register: 4, type: int16,"),
    Case("TAG", "error", DEPOT_CSV, r"TT-502,HS-0004-TK,temperature,5,holding,int16,,,0.1,,°C,-40,80",
         "TT-502,HS-0004-TK,temperature,5,holding,int16,,,0.1,,°C,80,-40"),
]


def _apply(root: Path, case: Case) -> int:
    path = root / case.file
    text = path.read_text(encoding="utf-8")
    assert len(re.findall(case.old, text)) == 1, f"{case.old!r} must match once in {case.file}"
    start = re.search(case.old, text).start()
    text = re.sub(case.old, lambda _: case.new, text, count=1)
    path.write_text(text, encoding="utf-8")
    if case.line_of is None:
        return text[:start].count("\n") + 1
    return next(i for i, line in enumerate(text.split("\n"), 1) if case.line_of in line)


def _validate(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    rc = main(["inventory", "validate", str(root), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


@pytest.fixture
def lab_copy(tmp_path: Path) -> Path:
    root = tmp_path / "lab"
    shutil.copytree(LAB, root, ignore=shutil.ignore_patterns(".vault-pass", "group_vars"))
    return root


def test_lab_and_sichuan_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _validate(LAB, capsys)
    assert rc == 0 and out["errors"] == []
    # The lab deliberately holds one degraded line (N2) and one long-term shutdown (R4).
    assert sorted(f["rule"] for f in out["blockers"]) == ["N2", "R4"]
    rc, out = _validate(LAB.parent / "sichuan", capsys)
    assert rc == 0 and out["errors"] == [] and out["enterprises"] == 0


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}-{c.severity}-{i}" for i, c in enumerate(CASES)])
def test_rule(case: Case, lab_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _apply(lab_copy, case)
    rc, out = _validate(lab_copy, capsys)
    bucket = out["errors"] if case.severity == "error" else out["blockers"]
    hits = [f for f in bucket if f["rule"] == case.rule and f["file"] == str(lab_copy / case.file)]
    assert hits, f"no {case.severity} {case.rule} in {case.file}: {out['errors'] + out['blockers']}"
    assert line in {f["line"] for f in hits}, f"expected line {line}, got {[f['line'] for f in hits]}"
    assert all(f["message"] and f["path"] is not None for f in hits)
    if case.severity == "error":
        assert rc == 1
    else:
        # A blocker keeps the enterprise from being ready but leaves the inventory usable...
        assert rc == 0
        # ...and --strict, used before a rollout, refuses it.
        rc_strict, _ = _validate(lab_copy, capsys, "--strict")
        assert rc_strict == 1


def test_errors_come_all_at_once(lab_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for case in (CASES[0], CASES[2], CASES[22], CASES[34]):
        _apply(lab_copy, case)
    rc, out = _validate(lab_copy, capsys)
    assert rc == 1
    assert {"N1", "N2", "R2", "REGMAP"} <= {f["rule"] for f in out["errors"]}


def test_text_output_names_file_line_rule(lab_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = next(c for c in CASES if c.rule == "V1")
    line = _apply(lab_copy, case)
    main(["inventory", "validate", str(lab_copy), "--strict"])
    out = capsys.readouterr().out
    assert f"{case.file}:{line}: blocker V1 [cameras[1].address]" in out
    assert "10.23.1.3" in out and "192.168.0.0/16" in out


def test_bad_yaml_is_reported_with_its_line(lab_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = lab_copy / CHEM
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[5] = "programmes: [major_hazard, key_process"  # unclosed flow sequence
    path.write_text("\n".join(lines), encoding="utf-8")
    rc, out = _validate(lab_copy, capsys)
    assert rc == 1
    hit = next(f for f in out["errors"] if f["file"] == str(path))
    assert hit["rule"] == "SCHEMA" and "YAML" in hit["message"] and hit["line"] >= 6


def test_duplicate_enterprise_code(lab_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = lab_copy / CHEM
    shutil.copy(src, src.with_name("copy-of-chem.yml"))
    rc, out = _validate(lab_copy, capsys)
    assert rc == 1
    hit = next(f for f in out["errors"] if f["rule"] == "UNIQ")
    # Files are read in name order: the later one is the duplicate, and names the first.
    assert hit["file"].endswith("labe0001-chem.yml") and hit["line"] == 2
    assert "copy-of-chem.yml" in hit["message"]
