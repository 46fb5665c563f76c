"""Processes the lab starts: started inside a namespace, recorded by PID, stopped by that PID only.

A record keeps the process's start time (from /proc) as well as its PID, so that a PID the
kernel has since given to another program is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ProcRecord:
    name: str
    pid: int
    start_time: int  # /proc/<pid>/stat field 22: distinguishes a reused PID
    ns: str
    argv: list[str]
    log: str
    kind: str = "service"  # host | sim | service | helper
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ProcRecord:
        return cls(**data)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(rec: ProcRecord) -> bool:
    fields = _stat(rec.pid)
    # A zombie has exited: it only waits to be reaped by whoever started it.
    return fields is not None and int(fields[19]) == rec.start_time and fields[0] != "Z"


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def spawn(
    name: str,
    ns: str,
    argv: list[str],
    log: Path,
    kind: str = "service",
    env: dict[str, str] | None = None,
    **extra: str,
) -> ProcRecord:
    """Start `argv` in namespace `ns` ("" = root), detached into its own session, output to `log`."""
    full = ["ip", "netns", "exec", ns, *argv] if ns else argv
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the `hazmon lab up` that started it
            env={**os.environ, **(env or {})},
        )
    st = None
    for _ in range(50):
        st = start_time(proc.pid)
        if st is not None:
            break
        time.sleep(0.01)
    # `ip netns exec` execs the program in place, so this PID is the program's own.
    return ProcRecord(name, proc.pid, st or 0, ns, argv, str(log), kind, dict(extra))


def stop(rec: ProcRecord, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """TERM (or `sig`), wait, then KILL: only this process, identified by PID and start time."""
    if not alive(rec):
        return
    os.kill(rec.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(rec):
            _reap(rec.pid)
            return
        _reap(rec.pid)
        time.sleep(0.05)
    os.kill(rec.pid, signal.SIGKILL)
    while alive(rec):
        _reap(rec.pid)
        time.sleep(0.05)


def _reap(pid: int) -> None:
    # Not our child when an earlier `lab up` started it: then its new parent reaps it.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size of these processes (shared pages split among their users)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
