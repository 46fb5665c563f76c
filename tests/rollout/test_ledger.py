"""The rollout ledger: records, progress per enterprise, and the waves cut on enterprise boundaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hazmon.rollout import ledger
from hazmon.rollout.ledger import Gate, Record, Status
from hazmon.rollout.runner import RolloutError, serial_for, wave_sizes


def rec(run: str, gate: str, status: str, host: str, ent: str = "E1", **kw) -> Record:
    return Record(run=run, gate=gate, status=status, host=host, enterprise=ent, slug=ent.lower(), batch=1, **kw)


def test_records_round_trip_one_json_line_each(tmp_path: Path):
    path = tmp_path / "l.jsonl"
    ledger.append(path, [rec("r1", Gate.PREFLIGHT, Status.PASSED, "e1-agw"),
                         rec("r1", Gate.ROLLOUT, Status.FAILED, "e1-daq", task="t", reason="boom")])
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["reason"] == "boom"
    back = list(ledger.read(path))
    assert [r.status for r in back] == ["passed", "failed"] and back[1].task == "t"


GOOD = '{"run": "r", "gate": "preflight", "status": "passed", "host": "h", "enterprise": "E1", "slug": "e1"}\n'
# What a control node that lost power in the middle of an append leaves: half a record, no newline.
TORN = '{"run": "r", "gate": "rollout", "status": "pas'


def test_a_damaged_line_is_named_and_skipped(tmp_path: Path):
    path = tmp_path / "l.jsonl"
    path.write_text(GOOD + "not json\n" + '["a list"]\n' + '{"run": "r", "gate": "verify"}\n' + GOOD)
    records, skipped = ledger.read_reporting(path)
    assert len(records) == 2
    assert [(s.line, s.torn) for s in skipped] == [(2, False), (3, False), (4, False)]
    assert str(skipped[0]).startswith(f"{path}:2: skipped: not a ledger record (")
    assert "'not json'" in str(skipped[0]) and "no status, host" in str(skipped[2])


def test_a_torn_last_line_is_reported_and_skipped_never_fatal(tmp_path: Path):
    path = tmp_path / "l.jsonl"
    path.write_text(GOOD + GOOD + TORN)
    records, skipped = ledger.read_reporting(path)
    assert [r.gate for r in records] == ["preflight", "preflight"]
    (torn,) = skipped
    assert (torn.path, torn.line, torn.torn) == (path, 3, True)
    assert str(torn).startswith(f"{path}:3: skipped: the last line is cut short") and TORN[:40] in str(torn)
    assert list(ledger.read(path)) == records  # readers that do not report skip it too


def test_a_record_appended_after_a_torn_line_is_a_line_of_its_own(tmp_path: Path):
    """The run that resumes after the crash appends: its record must not be glued to the torn one."""
    path = tmp_path / "l.jsonl"
    path.write_text(GOOD + TORN)
    ledger.append(path, [rec("r2", Gate.ROLLOUT, Status.PASSED, "e1-agw")])
    records, skipped = ledger.read_reporting(path)
    assert [(r.run, r.gate) for r in records] == [("r", "preflight"), ("r2", "rollout")]
    assert [(s.line, s.torn) for s in skipped] == [(2, False)]  # ended by the append: no longer the last
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3


def test_progress_first_failure_of_the_latest_run_decides():
    records = [
        rec("r1", Gate.PREFLIGHT, Status.UNREACHABLE, "e1-agw", task="reach", reason="No route to host"),
        rec("r1", Gate.PREFLIGHT, Status.FAILED, "e1-daq", task="hold", reason="held back"),
        rec("r1", Gate.PREFLIGHT, Status.PASSED, "e2-agw", ent="E2"),
        rec("r1", Gate.ROLLOUT, Status.PASSED, "e2-agw", ent="E2"),
        rec("r1", Gate.VERIFY, Status.PASSED, "e2-agw", ent="E2"),
    ]
    prog = ledger.progress(records)
    assert prog["E1"].failed and prog["E1"].failed_gate == "preflight" and prog["E1"].failed_host == "e1-agw"
    assert prog["E1"].reason == "No route to host" and not prog["E1"].done
    assert prog["E2"].done and prog["E2"].stage == "verified"
    # The re-run after the link came back: E1 passes every gate.
    records += [rec("r2", g, Status.PASSED, h) for g in (Gate.PREFLIGHT, Gate.ROLLOUT, Gate.VERIFY)
                for h in ("e1-agw", "e1-daq")]
    prog = ledger.progress(records)
    assert prog["E1"].done and not prog["E1"].failed and prog["E1"].last_run == "r2"


def test_check_runs_do_not_move_progress():
    records = [rec("r1", g, Status.PASSED, "e1-agw") for g in (Gate.PREFLIGHT, Gate.ROLLOUT, Gate.VERIFY)]
    records.append(rec("r2", Gate.ROLLOUT, Status.FAILED, "e1-agw", check=True, reason="drift"))
    assert ledger.progress(records)["E1"].done
    assert ledger.progress(records, include_check=True)["E1"].failed


def test_a_failed_verify_after_success_puts_it_back_to_provisioned():
    records = [rec("r1", g, Status.PASSED, "e1-agw") for g in (Gate.PREFLIGHT, Gate.ROLLOUT, Gate.VERIFY)]
    records.append(rec("r2", Gate.VERIFY, Status.FAILED, "e1-agw", reason="collector stopped"))
    p = ledger.progress(records)["E1"]
    assert p.stage == "provisioned" and p.failed_gate == "verify" and not p.done


def test_summary_records_count_changes_of_the_last_run():
    records = [rec("r1", "run", Status.SUMMARY, "e1-agw", counts={"changed": 7}),
               rec("r2", "run", Status.SUMMARY, "e1-agw", counts={"changed": 0}),
               rec("r2", "run", Status.SUMMARY, "e1-daq", counts={"changed": 2})]
    assert ledger.progress(records)["E1"].changed == 2


@pytest.mark.parametrize(("total", "waves", "sizes"), [
    (5, ["1", "25%", "100%"], [1, 1, 3]),
    (1, ["1", "25%", "100%"], [1]),
    (10, ["2"], [2, 2, 2, 2, 2]),
    (7, ["50%"], [3, 3, 1]),
    (0, ["1"], []),
])
def test_wave_sizes_follow_ansible_serial(total, waves, sizes):
    assert wave_sizes(total, waves) == sizes


def test_wave_size_zero_is_refused():
    with pytest.raises(RolloutError, match="at least 1"):
        wave_sizes(3, ["0"])


def test_serial_counts_whole_enterprises_hosts():
    hosts = {"A": ["a-agw", "a-daq", "a-sw"], "B": ["b-agw"], "C": ["c-agw", "c-daq"], "D": ["d-agw", "d-sw"]}
    assert serial_for(["A", "B", "C", "D"], hosts, ["1", "25%", "100%"]) == [3, 1, 4]
