"""One rollout at a time per environment: an flock on a file named for the environment.

Two runs on the same devices at once (two operators, a cron job and a hand run, AWX and a
terminal) would interleave their changes, restart each other's services and write one ledger from
two runs. So `hazmon rollout` takes this lock before it reads anything, and the ledger callback
takes it for a plain `ansible-playbook site.yml` (plugins/callback/hazmon_ledger.py); a second run
stops at once, naming the holder. The lock is the kernel's flock on the control node: a holder
that dies (kill -9, power cut) releases it with its last file descriptor, so a stale lock file
never blocks; its content (who holds it) is only read for the message.

`hazmon rollout` hands its lock to the ansible-playbook it starts (an inherited descriptor named in
$HAZMON_ROLLOUT_LOCK_FD): the callback adopts it instead of asking again, and a rollout whose
`hazmon rollout` was killed keeps the environment locked until its ansible-playbook ends.

An environment is an inventory folder, named as the ledger names it (`inventories/<name>`): two
checkouts of the same inventory drive the same devices, so they share the lock. The lock covers
one control node; several control nodes driving one environment need their own arbitration.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import re
import shlex
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ENV_LOCK_DIR = "HAZMON_LOCK_DIR"
ENV_LOCK_FD = "HAZMON_ROLLOUT_LOCK_FD"
DEFAULT_DIR = Path("/run/lock/hazmon")
# sysexits' EX_TEMPFAIL: nothing was done, try again later (not a failed gate, not a bad inventory).
EXIT_BUSY = 75


@dataclass(frozen=True)
class Holder:
    """Who holds an environment's lock (written into the lock file by the holder)."""

    pid: int
    user: str
    host: str
    command: str
    since: str  # ISO 8601, UTC

    def describe(self) -> str:
        return f"pid {self.pid} ({self.user}@{self.host}, since {self.since}): {self.command}"


class EnvironmentBusy(RuntimeError):
    """Another run holds the environment's lock."""

    def __init__(self, environment: str, path: Path, holder: Holder | None) -> None:
        self.environment, self.path, self.holder = environment, path, holder
        who = holder.describe() if holder else "a process that has not written its name yet"
        super().__init__(f"another rollout of environment {environment!r} is running: {who}. One run at a "
                         f"time per environment (lock {path}); wait for it to end, then run again.")


def environment_name(inventory: str | os.PathLike[str]) -> str:
    """The environment of an inventory source: its folder's name (inventories/lab/hazmon.yml -> lab)."""
    path = Path(os.path.abspath(inventory))
    return (path if path.is_dir() else path.parent).name or "hazmon"


def lock_path(environment: str) -> Path:
    base = Path(os.environ.get(ENV_LOCK_DIR) or DEFAULT_DIR)
    return base / f"rollout-{re.sub(r'[^A-Za-z0-9_.-]', '_', environment)}.lock"


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(**{k: data[k] for k in Holder.__dataclass_fields__})
    except (OSError, ValueError, TypeError, KeyError):
        return None  # not written yet, or by something else: the message says so


@dataclass
class EnvironmentLock:
    """The held lock: an open descriptor of the lock file (the lock lives as long as it does)."""

    environment: str
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = -1

    def child_env(self) -> dict[str, str]:
        """For the ansible-playbook this run starts (with pass_fds=[fd]): adopt this lock."""
        return {ENV_LOCK_FD: str(self.fd)}

    def __enter__(self) -> EnvironmentLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(environment: str, command: Sequence[str]) -> EnvironmentLock:
    """Take the environment's lock at once, or raise EnvironmentBusy naming the holder."""
    path = lock_path(environment)
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Like /run/lock itself: every operator of the control node may take an environment's lock.
        os.chmod(path.parent, 0o1777)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise EnvironmentBusy(environment, path, read_holder(path)) from None
        raise
    holder = Holder(os.getpid(), _user(), socket.gethostname(), shlex.join(command),
                    datetime.now(UTC).isoformat(timespec="seconds"))
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(asdict(holder), ensure_ascii=False) + "\n").encode("utf-8"), 0)
    return EnvironmentLock(environment, path, fd)


def adopt_or_acquire(environment: str, command: Sequence[str]) -> EnvironmentLock:
    """In ansible-playbook: the lock `hazmon rollout` handed down ($HAZMON_ROLLOUT_LOCK_FD), when it
    is this environment's, else the lock taken here. The variable is removed either way, so that
    nothing this process starts takes the descriptor for its own."""
    given = os.environ.pop(ENV_LOCK_FD, "")
    path = lock_path(environment)
    if given.isdigit():
        fd = int(given)
        try:
            same = os.path.exists(path) and _same_file(os.fstat(fd), os.stat(path))
        except OSError:
            same = False  # not an open descriptor: not handed down after all
        if same:
            # The same open file description as the holder's: taking it again is a no-op that proves
            # the lock is ours (another description would be refused).
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                same = False
        if same:
            os.set_inheritable(fd, False)  # held by this run, not by the SSH masters it leaves behind
            return EnvironmentLock(environment, path, fd)
    return acquire(environment, command)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
