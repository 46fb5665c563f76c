"""Benchmark of the rollout: batch 1 of the lab from bare hosts, re-run,
and the same with ansible-core's default tuning, measured in the same run.

    .venv/bin/python bench/bench_rollout.py [INVENTORY]

from bare  = every gateway and AI box of the batch reset (overlay wiped, rebooted), the fact cache
             emptied, then `hazmon rollout --batch 1 --all` (preflight, province, rollout, verify);
re-run     = the same command again at once (everything already in place: changed=0);
defaults   = both again with `--ansible-defaults`: no pipelining, 5 forks, every fact gathered on
             every run, no fact cache (ansible-core's defaults for what ansible.cfg tunes).
Targets: from bare <= 5 min, re-run <= 60 s, tuned at least 3x faster than defaults.
The lab must be up (`hazmon lab up`); the tracker is started here for the verify gates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hazmon.lab import datapath
from hazmon.lab.lab import Lab

BATCH = 1
HAZMON = str(Path(sys.executable).parent / "hazmon")
FACT_CACHE = Path("~/.cache/hazmon/ansible-facts").expanduser()


def rollout(inventory: Path, ledger: Path, *extra: str) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run([HAZMON, "rollout", str(inventory), "--batch", str(BATCH), "--all", "--json",
                           "--ledger", str(ledger), *extra], capture_output=True, text=True, check=False)
    took = time.monotonic() - t0
    if not proc.stdout.strip():
        raise SystemExit(f"rollout produced no summary (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    verified = sorted(p["slug"] for p in result["enterprises"].values() if p["stage"] == "verified")
    failed = {p["slug"]: p["reason"] for p in result["enterprises"].values()
              if p["failed_gate"] and p["enterprise"] not in result["not_ready"]}
    if failed:
        print(f"   warning: failed enterprises {failed}")
    result["verified"] = verified
    result["changed_total"] = sum(result["changed"].values())
    return took, result


def from_bare(lab: Lab, inventory: Path, ledger: Path, *extra: str) -> tuple[float, dict]:
    hosts = [h.name for h in lab.plan.hosts.values()
             if h.enterprise and lab.plan.sites[h.enterprise].enterprise.batch == BATCH]
    lab.reset_hosts(hosts)
    shutil.rmtree(FACT_CACHE, ignore_errors=True)
    return rollout(inventory, ledger, *extra)


def main() -> int:
    inventory = Path(sys.argv[1] if len(sys.argv) > 1 else "inventories/lab").resolve()
    lab = Lab(inventory_root=inventory, log=lambda m: None)
    if not lab.state().exists():
        print("bench_rollout: the lab is not up (hazmon lab up); skipped")
        return 0
    vault = datapath.ensure_lab_vault(lab.inventory)
    with tempfile.TemporaryDirectory(prefix="hazmon-bench-rollout-") as tmp:
        work = Path(tmp)
        figures = {}
        for label, extra in (("tuned", ()), ("defaults", ("--ansible-defaults",))):
            # A tracker of its own per measurement: each configuration's verify gates see only the
            # data of its own rollout.
            client = f"hazmon-tracker-bench-{label}"
            tracker = datapath.tracker_setup(lab, work / f"tracker-{label}", vault, client_id=client)
            proc = datapath.start_tracker(tracker, work / f"tracker-{label}.log")
            try:
                datapath.wait_tracker(tracker, proc)
                ledger = work / f"ledger-{label}.jsonl"
                bare_s, bare = from_bare(lab, inventory, ledger, *extra)
                rerun_s, rerun = rollout(inventory, ledger, *extra)
            finally:
                datapath.terminate(proc)
                datapath.forget_session(lab, vault, client)
            figures[label] = (bare_s, rerun_s)
            hosts = len(bare["changed"])
            print(f"rollout batch {BATCH} ({label}): from bare {bare_s:.1f} s "
                  f"({len(bare['verified'])} enterprises verified, {hosts} hosts, "
                  f"{bare['changed_total']} changes); re-run {rerun_s:.1f} s ({len(rerun['verified'])} verified, "
                  f"{rerun['changed_total']} changes)", flush=True)
        (tb, tr), (db, dr) = figures["tuned"], figures["defaults"]
        print(f"rollout speed-up over ansible-core defaults: from bare {db / tb:.2f}x, re-run {dr / tr:.2f}x "
              "(targets: from bare <= 300 s, re-run <= 60 s, >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
