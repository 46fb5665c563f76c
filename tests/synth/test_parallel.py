"""Validation's use of both cores gives exactly the one-process result: the forked rule runner
(rules/__init__.py) and the parallel cold parse (parallel.py), forced on the lab inventory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
DEPOT_CSV = "cities/5101-chengdu/enterprises/labe0004-depot.tags.csv"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAZMON_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "lab"
    shutil.copytree(LAB, root)
    # Findings for the tag rules too (the forked child's share): a tag row written twice.
    table = root / DEPOT_CSV
    rows = table.read_text(encoding="utf-8").splitlines()
    table.write_text("\n".join([*rows, rows[1]]) + "\n", encoding="utf-8")
    old = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (old, old))
    return root


# Both checks run in a fresh interpreter: validation forks only when no other thread is alive
# (a lock held by another thread would stay held in the child), and earlier tests in this
# session leave server threads running.
_PRELUDE = r"""
import json, os, sys
from pathlib import Path
from hazmon.inventory import loader, parallel, rules
from hazmon.inventory.validate import validate

def outcome(root):
    inv, readiness = validate(root)
    return ([(str(f.file), f.line, f.rule, str(f.severity), f.message, f.path, f.enterprise)
             for f in inv.report.findings],
            [e.model_dump(mode="json") for e in inv.enterprises],
            [(str(r.lifecycle), r.ready) for r in readiness])
"""

_FORKED = _PRELUDE + r"""
root = Path(sys.argv[1])
rules.FORK_MIN_ENTERPRISES = 10**9
alone = outcome(root)
rules.FORK_MIN_ENTERPRISES = 0
calls = []
real_fork = os.fork
os.fork = lambda: calls.append(1) or real_fork()
forked = outcome(root)
print(json.dumps({"calls": len(calls), "same": forked == alone,
                  "csv_rules": sorted({f[2] for f in forked[0] if f[0].endswith(".csv")})}))
"""

_PARSE = _PRELUDE + r"""
root, cache = Path(sys.argv[1]), sys.argv[2]
os.environ["HAZMON_CACHE_DIR"] = "off"
alone = outcome(root)
os.environ["HAZMON_CACHE_DIR"] = cache
parallel.MIN_FILES = 0
parsed = []
real = parallel.prefetch
loader.prefetch = lambda c, f: parsed.append(real(c, f)) or parsed[-1]
same = outcome(root) == alone
inv, _ = validate(root)  # warm now: what the workers parsed was stored
print(json.dumps({"same": same, "parsed": parsed, "misses": inv.parse_cache.misses,
                  "hits": inv.parse_cache.hits}))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_forked_rules_give_the_same_findings_in_the_same_order(lab: Path) -> None:
    result = _run(_FORKED, str(lab), env={"HAZMON_CACHE_DIR": "off"})
    assert result["calls"], "the rules were not run in two processes"
    assert result["same"]
    assert {"UNIQ", "REGMAP"} <= set(result["csv_rules"])


def test_parallel_cold_parse_gives_the_same_result_and_fills_the_cache(lab: Path) -> None:
    result = _run(_PARSE, str(lab), str(lab.parent / "cache"))
    assert result["same"]
    assert result["parsed"] and result["parsed"][0] > 0, "nothing was parsed by the workers"
    assert result["misses"] == 0 and result["hits"] > 0
