"""Cross-record rules, one function per notice requirement (IDs of REQUIREMENTS.md).

Each family module exposes RULES, a tuple of callables taking the loaded Inventory and
emitting findings on it. Severity tells what a finding does: ERROR stops everything
downstream; BLOCKER keeps one enterprise from being ready (readiness is derived from them).
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable

from hazmon.inventory.findings import Finding
from hazmon.inventory.loader import Inventory, gc_paused
from hazmon.inventory.rules import datasources, integrity, network, registration, video

Rule = Callable[[Inventory], None]

ALL_RULES: tuple[Rule, ...] = (
    *integrity.RULES,
    *network.RULES,
    *video.RULES,
    *datasources.RULES,
    *registration.RULES,
)

# The rules a forked child runs while this process runs the others (about half the time each at
# national scale: the tag rules walk 440,000 tags). Below FORK_MIN_ENTERPRISES, forking costs more
# than it saves.
_CHILD_RULES = frozenset(datasources.RULES)
FORK_MIN_ENTERPRISES = 1000


def run_all(inv: Inventory) -> None:
    with gc_paused():  # see loader.gc_paused: the rules walk the whole model
        if not _run_forked(inv):
            for rule in ALL_RULES:
                rule(inv)


def _run(inv: Inventory, rules: list[tuple[int, Rule]]) -> dict[int, list[Finding]]:
    """Run `rules`, returning the findings of each (by its index in ALL_RULES)."""
    out: dict[int, list[Finding]] = {}
    findings = inv.report.findings
    for index, rule in rules:
        start = len(findings)
        rule(inv)
        out[index] = findings[start:]
        del findings[start:]
    return out


def _can_fork(inv: Inventory) -> bool:
    # fork() copies only the calling thread: with other threads alive (Ansible's workers...) a
    # lock they hold would stay held in the child; run everything here then.
    return (hasattr(os, "fork") and len(inv.enterprises) >= FORK_MIN_ENTERPRISES
            and threading.active_count() == 1)


def _run_forked(inv: Inventory) -> bool:
    """Run the rules in two processes (the model is shared copy-on-write, findings come back
    pickled) and put the findings in the order one process gives. False: not done, run here."""
    if not _can_fork(inv):
        return False
    indexed = list(enumerate(ALL_RULES))
    theirs = [(i, r) for i, r in indexed if r in _CHILD_RULES]
    ours = [(i, r) for i, r in indexed if r not in _CHILD_RULES]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run its share, send the findings and its line lookups, leave at once
        status = 1
        try:
            os.close(read_fd)
            result = (_run(inv, theirs), inv.parse_cache.noted_lines())
            payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        mine = _run(inv, ours)
        with os.fdopen(read_fd, "rb") as fh:
            payload = fh.read()
    finally:
        _, status = os.waitpid(pid, 0)
    if status != 0 or not payload:
        theirs_found = _run(inv, theirs)  # the child failed: do its share here
    else:
        theirs_found, lines = pickle.loads(payload)
        inv.parse_cache.merge_lines(lines)  # the child's line lookups, for the next run
    found = {**mine, **theirs_found}
    for index, _rule in indexed:
        inv.report.findings.extend(found[index])
    return True
