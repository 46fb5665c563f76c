"""A real full disk for tests: a tiny tmpfs mounted under the test's folder (needs root, as the
suite runs), filled to its last byte. Storage faults are tested on a filesystem that really says
ENOSPC, not on a mock."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tiny_disk(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: "1m") at `where`, unmounted whatever happens."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until not one more byte fits; returns it (unlink it to free the disk)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (65536, 512, 1):  # big blocks, then what is left of the last one
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    probe = os.open(disk / "probe", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(probe, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    else:
        raise AssertionError(f"{disk} still takes writes after filling it")
    finally:
        os.close(probe)
    return filler
