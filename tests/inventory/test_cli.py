"""The `hazmon inventory` commands on the lab inventory: what an operator and a machine see."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hazmon.cli.main import main

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().out


def test_readiness_is_derived_per_enterprise(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = run(capsys, "inventory", "readiness", str(LAB), "--json")
    assert rc == 0
    rows = {r["enterprise"]: r for r in json.loads(out)}
    assert rows["91510100MALABE0001"]["lifecycle"] == "ready"
    degraded = rows["91510100MALABE0006"]
    assert degraded["lifecycle"] == "surveyed" and not degraded["ready"]
    assert [f["rule"] for f in degraded["blocked_by"]] == ["N2"]
    assert [f["rule"] for f in rows["91510100MALABE0007"]["blocked_by"]] == ["R4"]


def test_readiness_table_by_city_and_batch(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = run(capsys, "inventory", "readiness", str(LAB), "--batch", "2")
    assert rc == 0
    assert "5101 成都市" in out and "长期停产" in out
    assert "泸州" not in out  # batch 2 has only the Chengdu shutdown enterprise
    assert "0 of 1 enterprises ready" in out


def test_show_by_slug(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = run(capsys, "inventory", "show", "labe0004", str(LAB), "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["code"] == "91510100MALABE0004"
    assert data["route"]["via"] == "parent_company"
    # The tag table came from the CSV beside the file.
    assert [t["code"] for t in data["data_sources"][0]["tags"]][:2] == ["LT-501", "LT-502"]
    rc, _ = run(capsys, "inventory", "show", "no-such", str(LAB))
    assert rc == 2


def test_graph_shows_parent_company_route(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = run(capsys, "inventory", "graph", str(LAB))
    assert rc == 0
    lines = out.splitlines()
    via = next(i for i, line in enumerate(lines) if "via parent company" in line)
    assert "中石油成都实验油库" in lines[via + 1]
    assert "ch2 cam-tank 192.168.1.12 tank_farm" in out


def test_export_json_round_trips_through_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    from hazmon.inventory.model import Enterprise
    from hazmon.inventory.validate import load_valid

    rc, out = run(capsys, "inventory", "export", str(LAB), "--format", "json")
    assert rc == 0
    data = json.loads(out)
    inv, _ = load_valid(LAB)
    assert len(data["enterprises"]) == len(inv.enterprises) == 7
    for raw, ent in zip(data["enterprises"], inv.enterprises, strict=True):
        raw = {k: v for k, v in raw.items() if k not in ("lifecycle", "blocked_by")}
        assert Enterprise.model_validate(raw) == ent


def test_export_refuses_invalid_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "lab"
    shutil.copytree(LAB, root, ignore=shutil.ignore_patterns(".vault-pass", "group_vars"))
    city = root / "cities/5101-chengdu/city.yml"
    city.write_text(city.read_text(encoding="utf-8").replace("contracted_mbps: 100", "contracted_mbps: 10"))
    capsys.readouterr()
    rc = main(["inventory", "export", str(root)])
    captured = capsys.readouterr()
    assert rc == 1 and captured.out == ""
    assert "city.yml:4: error N1" in captured.err and "nothing exported" in captured.err


def test_console_script_exit_status(tmp_path: Path) -> None:
    """The installed `hazmon` program, as an operator or CI runs it."""
    exe = Path(sys.executable).with_name("hazmon")
    ok = subprocess.run([exe, "inventory", "validate", str(LAB)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "0 errors" in ok.stdout
    bad = subprocess.run([exe, "inventory", "validate", str(tmp_path)], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "province.yml" in bad.stdout
