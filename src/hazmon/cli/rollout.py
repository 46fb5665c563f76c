"""`hazmon rollout`: bring a batch of enterprises online through the project's playbooks.

    hazmon rollout --batch N [ENV] [--check] [--all]     preflight, rollout in waves, verify
    hazmon rollout --status [--batch N] [ENV]            where each enterprise stands (the ledger)
    hazmon rollout --decommission ENTERPRISE... [ENV]    take enterprises off the platform
"""

from __future__ import annotations

import argparse
import json
import sys

from hazmon.cli.common import env_dir, json_parent
from hazmon.inventory.findings import InventoryError
from hazmon.rollout import ledger, lock
from hazmon.rollout.batch import BatchResult, decommission, run_batch
from hazmon.rollout.runner import DEFAULT_MAX_FAIL_PERCENTAGE, DEFAULT_WAVES, RolloutError, Runner

DEFAULT_ENV = "lab"
EXIT_FAILED = 1  # an enterprise failed a gate (the ledger says which and why), or drift in --check
EXIT_UNUSABLE = 2  # invalid inventory, unknown batch: nothing was run
EXIT_BUSY = lock.EXIT_BUSY  # another run holds the environment: nothing was run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rollout", parents=[json_parent()],
                              help="bring a batch online: preflight, rollout in waves, verify (ledger)")
    p.add_argument("env_dir", nargs="?", default=DEFAULT_ENV, metavar="ENV",
                   help=f"inventory folder or name under inventories/ (default {DEFAULT_ENV})")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--batch", type=int, help="the batch to roll out (the inventory's `batch:`)")
    what.add_argument("--status", action="store_true", help="print the ledger's view and run nothing")
    what.add_argument("--decommission", nargs="+", metavar="ENTERPRISE",
                      help="stop the collector, free the switch ports, end the NVR's platform access")
    p.add_argument("--check", action="store_true",
                   help="dry run with diffs: what the rollout would change (drift), nothing applied")
    p.add_argument("--all", action="store_true", dest="everything",
                   help="include enterprises already verified (by default a run continues where the last stopped)")
    p.add_argument("--enterprise", action="append", default=[], metavar="ENTERPRISE",
                   help="only these enterprises of the batch (code or slug; repeatable)")
    p.add_argument("--waves", default=",".join(DEFAULT_WAVES),
                   help="wave sizes over enterprises, counts or percentages (default %(default)s)")
    p.add_argument("--max-fail-percentage", type=int, default=DEFAULT_MAX_FAIL_PERCENTAGE,
                   help="stop the run when more than this share of a wave's enterprises failed (an "
                        "enterprise fails when any of its devices does; the first wave, the canary, stops "
                        "it at any failure) (default %(default)s)")
    p.add_argument("--ledger", help=f"ledger file (default ${ledger.ENV_LEDGER} or {ledger.DEFAULT_DIR}/<env>.jsonl)")
    p.add_argument("--ansible-defaults", action="store_true",
                   help="ansible-core's default tuning instead of ansible.cfg's (for comparison)")
    p.add_argument("--plain-strategy", action="store_true",
                   help="Ansible's own linear strategy instead of Mitogen's (ansible.cfg), e.g. for an "
                        "ansible-core release Mitogen does not support yet")
    p.add_argument("-v", "--verbose", action="count", default=0, help="passed on to ansible-playbook")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    root = env_dir(args.env_dir).resolve()
    runner = Runner(root, ledger.ledger_path(root.name, args.ledger), verbosity=args.verbose,
                    ansible_defaults=args.ansible_defaults, plain_strategy=args.plain_strategy,
                    stream="stderr" if args.json else "stdout")
    if args.status:
        return _status(runner, args)  # reads the ledger only: works while a run holds the lock
    try:
        # Before anything is read: the run that holds the environment may be writing the ledger.
        runner.lock = lock.acquire(lock.environment_name(root), sys.argv)
    except lock.EnvironmentBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except OSError as exc:
        print(f"error: the environment's lock {lock.lock_path(lock.environment_name(root))}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        if args.decommission:
            return EXIT_FAILED if decommission(root, args.decommission, runner) else 0
        result = run_batch(root, args.batch, runner, check=args.check, everything=args.everything,
                           waves=[w for w in args.waves.split(",") if w], only=args.enterprise,
                           max_fail_percentage=args.max_fail_percentage)
    except (InventoryError, RolloutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    finally:
        runner.lock.release()
    for line in result.ledger_skipped:
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(_as_json(result), ensure_ascii=False, indent=1))
    else:
        _print(result)
    return 0 if result.ok else EXIT_FAILED


def _as_json(result: BatchResult) -> dict:
    return {
        "batch": result.batch,
        "run": result.run_id,
        "check": result.check,
        "selected": result.selected,
        "skipped_done": result.skipped_done,
        "passed_preflight": result.passed_preflight,
        "serial": result.serial,
        "not_ready": result.not_ready,
        "changed": result.changed,
        "stopped": result.stopped,
        "not_reached": result.not_reached,
        "ledger_skipped": result.ledger_skipped,
        "ok": result.ok,
        "enterprises": {c: vars(p) for c, p in result.progress.items() if p.batch == result.batch},
    }


def _print(result: BatchResult) -> None:
    mode = " (check mode: nothing applied)" if result.check else ""
    print(f"\nhazmon rollout: batch {result.batch}, run {result.run_id}{mode}")
    if result.skipped_done:
        print(f"  left alone (verified in an earlier run; --all to include): {', '.join(result.skipped_done)}")
    if not result.selected:
        print("  nothing to do: every enterprise of the batch is verified")
        return
    if result.serial:
        print(f"  waves (hosts per wave, whole enterprises): {result.serial}")
    if result.stopped:
        print(f"  the run stopped: {result.stopped}")
    if result.not_reached:
        print(f"  not started (their wave never came): {', '.join(result.not_reached)}")
    if result.check:
        drift = {h: n for h, n in sorted(result.changed.items()) if n}
        print("  drift: " + (", ".join(f"{h} ({n} change{'s' * (n > 1)})" for h, n in drift.items())
                             if drift else "none: every host is as the rollout left it"))
        return
    width = max(len(c) for c in result.selected)
    for code in result.selected:
        p = result.progress.get(code)
        if p is None:
            print(f"  {code:<{width}}  not run")
            continue
        line = f"  {code:<{width}}  {p.slug or '':<9} {p.stage:<12}"
        if p.failed:
            line += f" FAILED at {p.failed_gate} on {p.failed_host}: {p.failed_task}: {p.reason}"
        else:
            line += f" changed {p.changed}"
        print(line)


def _status(runner: Runner, args: argparse.Namespace) -> int:
    records, skipped = ledger.read_reporting(runner.ledger_file)
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)
    prog = ledger.progress(records)
    rows = [p for p in prog.values() if args.batch is None or p.batch == args.batch]
    if args.json:
        print(json.dumps([vars(p) for p in rows], ensure_ascii=False, indent=1))
        return 0
    if not rows:
        print(f"the ledger {runner.ledger_file} has no record{' of batch ' + str(args.batch) if args.batch else ''}")
        return 0
    for p in sorted(rows, key=lambda p: (p.batch or 0, p.enterprise)):
        why = f"  {p.failed_gate} failed on {p.failed_host}: {p.reason}" if p.failed else ""
        print(f"  batch {p.batch}  {p.enterprise}  {p.slug or '':<9} {p.stage:<12} (run {p.last_run}){why}")
    return 0
