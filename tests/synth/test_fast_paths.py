"""The loader's fast paths (made for the 7,000-enterprise bench) give exactly PyYAML's and csv's results."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from hazmon.inventory.sourcemap import FastLoader, read_tag_table

DOCS = [
    "a: &x {b: 1, c: [1, 2.5, -3]}\nd: *x\ne:\n  <<: *x\n  f: 2\n",  # anchors and a merge key
    "s: !!set {a, b}\nbin: !!binary aGk=\n",  # explicit tags
    "r: &r [1, *r]\n",  # a recursive sequence
    "t: 2026-01-01\nu: 2026-01-01 10:00:00\nv: ~\nw: yes\nx: 0x1f\ny: .inf\nz: '12'\nq: \"5101\"\n",
    "? [1]\n: 2\n",  # an unhashable key: PyYAML's own error
    "- a\n- &y {k: v}\n- *y\n- 010\n- 1_000\n- 1:20\n- null\n- ''\n",
    "code: 91510100MALABE0001\nname: 成都实验化工有限公司\nline: {contracted_mbps: 20, measured_on: 2026-11-01}\n",
    "",
]


@pytest.mark.parametrize("doc", DOCS)
def test_fast_loader_equals_csafeloader(doc):
    def load(loader: type) -> object:
        try:
            return yaml.load(doc, Loader=loader)
        except yaml.YAMLError as exc:
            return f"{type(exc).__name__}: {exc.problem}"

    fast, slow = load(FastLoader), load(yaml.CSafeLoader)
    assert repr(fast) == repr(slow)


def test_fast_loader_keeps_aliases_as_one_object():
    data = yaml.load("a: &x {k: 1}\nb: *x\n", Loader=FastLoader)
    assert data["a"] is data["b"]


TABLES = [
    "code,kind,unit\nT1,level,m\n\nT2,,\nT3,level,m,extra,more\nT4\n",
    "\ufeffcode,kind\nT1,level\n",  # a BOM, as Excel writes
    "",
    "code,kind\n",
]


# (A repeated column is refused: tests/inventory/test_hostile_input.py.)
@pytest.mark.parametrize("text", TABLES)
def test_read_tag_table_equals_dictreader(tmp_path: Path, text: str):
    file = tmp_path / "t.csv"
    file.write_text(text, encoding="utf-8")
    with file.open(encoding="utf-8-sig", newline="") as fh:
        expected = [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
    assert read_tag_table(file) == expected
