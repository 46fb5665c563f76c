"""The fuzz run over copies of inventories/lab (hazmon.inventory.fuzz): every named mutation class,
each case in a worker process under a time and memory bound, asserting no exception but the
loader's own findings, no hang, no silent disappearance, no leak from outside the inventory, and a
parse cache that neither serves a stale file nor hides a fix. Deterministic: fixed seeds."""

from __future__ import annotations

import shutil
from pathlib import Path

from hazmon.inventory import fuzz
from hazmon.inventory.validate import validate

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
GROUPS = {"encodings", "bytes", "structure", "types", "numbers", "unicode", "paths", "files", "folders",
          "duplicates"}


def test_the_mutation_classes_are_named_and_cover_the_ground() -> None:
    names = [m.name for m in fuzz.MUTATIONS]
    assert len(names) == len(set(names)) >= 50
    assert {m.group for m in fuzz.MUTATIONS} == GROUPS
    # A type swap for every kind of model field.
    assert {f"swap_{kind}" for kind in fuzz.FIELD_KINDS} <= set(names)
    assert len(fuzz.cases()) >= 100


def test_the_fuzz_run_finds_no_traceback_hang_or_silent_loss(tmp_path: Path) -> None:
    outcomes = fuzz.run(LAB, tmp_path)
    summary = fuzz.summarise(outcomes, 0)
    assert summary.cases == len(fuzz.cases())
    failures = [f"{o.mutation}[{o.variant}]: {f}" for o in outcomes for f in o.failures]
    assert failures == []
    assert summary.tracebacks == 0 and summary.hangs == 0
    # The classes that break a file did produce errors (each case also checked that one names it).
    for o in outcomes:
        mutation = next(m for m in fuzz.MUTATIONS if m.name == o.mutation)
        assert o.errors > 0 or mutation.expect != fuzz.ERROR, o.mutation
    fuzz.unlock(tmp_path)


def test_a_case_beyond_its_time_is_a_hang_and_the_run_goes_on(tmp_path: Path) -> None:
    # No case can answer within a microsecond: each is reported as a hang, its worker killed and
    # replaced, and the next case still runs.
    wanted = {"empty_enterprise", "gbk_yaml"}
    outcomes = fuzz.run(LAB, tmp_path, seconds=1e-6, only=lambda m: m.name in wanted)
    assert [o.mutation for o in outcomes] == ["gbk_yaml", "empty_enterprise"]
    assert all(o.failures and o.failures[0].startswith("hang") for o in outcomes)
    assert fuzz.summarise(outcomes, 0).hangs == 2
    assert sorted(p.name for p in tmp_path.glob("worker-*.log")) == ["worker-1.log", "worker-2.log"]


def test_an_enterprise_neither_loaded_nor_named_is_reported_as_silent(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    shutil.copytree(LAB, root)
    inv, _ = validate(root)
    mutation = next(m for m in fuzz.MUTATIONS if m.name == "empty_enterprise")
    assert fuzz.check_case(inv, inv.root, mutation, [], 0) == []
    # What the loader once did with an empty file: leave the enterprise out without a word.
    gone = inv.enterprises.pop()
    failures = fuzz.check_case(inv, inv.root, mutation, [inv.origins[f"enterprise:{gone.code}"].file], 0)
    assert len(failures) == 2 and failures[0].startswith("silent:") and failures[1].startswith("no error names")
