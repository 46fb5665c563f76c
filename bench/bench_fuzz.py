"""The inventory loader under hostile input: the fuzz run's counts.

    .venv/bin/python bench/bench_fuzz.py [INVENTORY]     (default: inventories/lab)

Runs every mutation class of hazmon.inventory.fuzz (encodings, byte-order marks, truncation, flipped
bytes, type swaps of every model field kind, NaN/inf/huge numbers, deep nesting, aliases, duplicate
keys, empty files, paths out of the inventory, devices, FIFOs, links, huge cells, control characters,
impossible dates, unicode oddities, duplicated enterprises and addresses, missing and unreadable
files, folders where files belong...) on copies of the inventory, each case in a worker process
bounded in time and memory, and prints per class: cases, findings, errors, failed cases and the
slowest case; then the totals: classes, cases, findings, failures, tracebacks, hangs and time.
Targets: tracebacks = 0, hangs = 0, failures = 0 (the exit status says whether they are met).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from hazmon.inventory import fuzz

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]).resolve() if args else REPO / "inventories" / "lab"
    print(f"hazmon inventory fuzz: {len(fuzz.MUTATIONS)} mutation classes, {len(fuzz.cases())} cases on {source} "
          f"(seed {fuzz.SEED}; per case at most {fuzz.CASE_SECONDS:g} s and {fuzz.MEMORY_BYTES / 1024**3:g} GiB)",
          flush=True)
    work = Path(tempfile.mkdtemp(prefix="hazmon-bench-fuzz-"))
    try:
        started = time.perf_counter()
        outcomes = fuzz.run(source, work)
        summary = fuzz.summarise(outcomes, time.perf_counter() - started)
    finally:
        fuzz.unlock(work)
        shutil.rmtree(work, ignore_errors=True)
    for line in fuzz.report(summary):
        print(line)
    for o in outcomes:
        for failure in o.failures:
            print(f"FAILED {o.mutation}[{o.variant}]: {failure}")
    ok = summary.failures == 0
    print(f"targets: tracebacks=0 hangs=0 failures=0: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
