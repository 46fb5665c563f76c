"""One batch's rollout, as `hazmon rollout --batch N` runs it.

Preflight for the whole batch, then province, rollout (waves of whole enterprises) and verify for
the enterprises that passed; the ledger says afterwards where each one stands. A second run leaves
out the enterprises already verified, so it continues where the first stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.inventory.validate import load_valid
from hazmon.rollout import ledger
from hazmon.rollout.runner import (
    DEFAULT_MAX_FAIL_PERCENTAGE,
    DEFAULT_WAVES,
    PROVINCE_GROUP,
    SITE,
    RolloutError,
    Runner,
    enterprise_hosts,
    limit_for,
    passed_gate,
    serial_for,
)

# One ansible-playbook run of site.yml: preflight cuts the rollout's waves itself (on enterprise
# boundaries, over the devices it let through), so nothing needs a second process, a second
# inventory load or a second connection to every box. One playbook file, not its four parts on
# the command line: ansible-playbook skips the files after one in which a host failed.
ROLLOUT = (str(SITE),)
CHECK = ("rollout.yml",)  # drift on provisioned hosts: the live checks would only add time
DECOMMISSION = ("decommission.yml",)


@dataclass
class BatchResult:
    batch: int
    run_id: str
    selected: list[str]  # enterprise codes this run worked on
    skipped_done: list[str]  # verified before: left alone
    passed_preflight: list[str] = field(default_factory=list)
    serial: list[int] = field(default_factory=list)
    progress: dict[str, ledger.EnterpriseProgress] = field(default_factory=dict)
    not_ready: dict[str, list[str]] = field(default_factory=dict)  # code -> inventory blockers
    changed: dict[str, int] = field(default_factory=dict)  # host -> changed tasks (this run)
    check: bool = False
    returncodes: list[int] = field(default_factory=list)
    # Why the run stopped after a wave (its verdict: the canary, or too many failures), and the
    # enterprises that came through preflight but whose wave never started.
    stopped: str | None = None
    not_reached: list[str] = field(default_factory=list)
    ledger_skipped: list[str] = field(default_factory=list)  # lines of the ledger no reader can use

    @property
    def ok(self) -> bool:
        """Every enterprise this run worked on is verified, or (check mode) nothing drifted; those the
        inventory itself holds back (not ready) are reported, not counted as failures."""
        if self.check:
            # ansible-playbook --check exits 0 whatever it would change: drift is in the recaps.
            return all(rc == 0 for rc in self.returncodes) and not any(self.changed.values())
        return all(self.progress[c].done for c in self.selected if c in self.progress and c not in self.not_ready)


def run_batch(root: Path, batch: int, runner: Runner, *, check: bool = False, everything: bool = False,
              waves: Sequence[str] = DEFAULT_WAVES, only: Sequence[str] = (),
              max_fail_percentage: int = DEFAULT_MAX_FAIL_PERCENTAGE) -> BatchResult:
    if not 0 <= max_fail_percentage <= 100:
        # Refused here, not by the wave's verdict at the end of the first wave (which would stop the run there).
        raise RolloutError(f"--max-fail-percentage {max_fail_percentage}: give 0 to 100 (a share of a wave's "
                           "enterprises)")
    inv, readiness = load_valid(root)  # an invalid inventory stops here: nothing is touched
    in_batch = sorted((r for r in readiness if r.enterprise.batch == batch), key=lambda r: r.enterprise.slug)
    if not in_batch:
        batches = sorted({r.enterprise.batch for r in readiness if r.enterprise.batch is not None})
        raise RolloutError(f"batch {batch}: no enterprise of {root} is in it (batches: {batches})")
    if only:
        unknown = [k for k in only if not any(k in (r.enterprise.code, r.enterprise.slug) for r in in_batch)]
        if unknown:
            raise RolloutError(f"{', '.join(unknown)}: not an enterprise (code or slug) of batch {batch}")
        in_batch = [r for r in in_batch if r.enterprise.code in only or r.enterprise.slug in only]
    hosts = enterprise_hosts(inv, readiness)
    records, skipped = ledger.read_reporting(runner.ledger_file)
    before = ledger.progress(records)
    codes = [r.enterprise.code for r in in_batch if hosts.get(r.enterprise.code)]
    done = [] if (everything or check) else [c for c in codes if c in before and before[c].done]
    selected = [c for c in codes if c not in done]
    if check:
        # Drift is a question about what the rollout put in place: enterprises it provisioned.
        selected = [c for c in selected if c in before and before[c].stage in ("provisioned", "verified")]
    result = BatchResult(batch, runner.run_id, selected, done, check=check,
                         ledger_skipped=[str(s) for s in skipped])
    result.not_ready = {r.enterprise.code: sorted({f.rule for f in r.blocking}) for r in in_batch if not r.ready}
    if not selected:
        result.progress = ledger.progress(ledger.read(runner.ledger_file))
        return result

    if check:
        # Drift: what the rollout would change on provisioned hosts, with diffs; nothing is applied.
        result.returncodes.append(runner.run(CHECK, limit_for(inv, selected), check=True))
    else:
        extra = {"rollout_waves": [str(w) for w in waves], "rollout_max_fail_percentage": max_fail_percentage}
        result.returncodes.append(runner.run(ROLLOUT, limit_for(inv, selected, PROVINCE_GROUP), extra))
        result.passed_preflight = passed_gate(runner.records(), ledger.Gate.PREFLIGHT, selected, hosts)
        # The waves preflight cut (the same function, over the same enterprises), for the summary.
        result.serial = serial_for(result.passed_preflight, hosts, waves)
        records = runner.records()
        result.stopped = next((r.reason for r in records if r.status == ledger.Status.STOPPED), None)
        reached = {r.enterprise for r in records if r.gate in (ledger.Gate.ROLLOUT, ledger.Gate.VERIFY)}
        result.not_reached = [c for c in result.passed_preflight if c not in reached]
    records = runner.records()
    for rec in records:
        if rec.status == ledger.Status.SUMMARY:
            result.changed[rec.host] = result.changed.get(rec.host, 0) + int(rec.counts.get("changed", 0))
    result.progress = ledger.progress(ledger.read(runner.ledger_file), include_check=False)
    return result


def decommission(root: Path, enterprises: Sequence[str], runner: Runner) -> int:
    inv, _ = load_valid(root)
    known = {e.code: e for e in inv.enterprises} | {e.slug: e for e in inv.enterprises}
    missing = [e for e in enterprises if e not in known]
    if missing:
        raise RolloutError(f"{', '.join(missing)}: no such enterprise (code or slug) in {root}")
    codes = [known[e].code for e in enterprises]
    return runner.run(DECOMMISSION, limit_for(inv, codes, PROVINCE_GROUP))
