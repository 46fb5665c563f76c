"""Parse a cold inventory's files on every core, straight into the parse cache.

With the parse cache empty (first run, or after a large change), parsing is two thirds of
validation at national scale. Worker processes parse the files not cached and return each one's
content as marshal bytes (what the cache stores, and cheap to send); the loader then reads them
from the cache as if they had been there. Anything a worker cannot handle (a parse error, a file
the inventory refuses, a date marshal cannot hold) is left to the loader, which parses and reports
it as ever. The loader hands over plain regular files only (no links, FIFOs or devices), and the
workers read them through the same bounded reading (hazmon.inventory.files).
"""

from __future__ import annotations

import marshal
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from hazmon.inventory.parsecache import ParseCache, Stamp, stamp_of
from hazmon.inventory.sourcemap import read_tag_table, read_yaml

MIN_FILES = 500  # below this, starting workers costs more than it saves
WORKERS = 2


def _parse(paths: list[str]) -> list[tuple[str, Stamp, bytes] | None]:
    out: list[tuple[str, Stamp, bytes] | None] = []
    for name in paths:
        path = Path(name)
        try:
            stamp = stamp_of(path.stat())
            data = read_tag_table(path) if name.endswith(".csv") else read_yaml(path)
            out.append((name, stamp, marshal.dumps(data)))
        except Exception:  # the loader parses it again and reports the problem
            out.append(None)
    return out


def prefetch(cache: ParseCache, files: list[Path]) -> int:
    """Parse the uncached `files` in worker processes into `cache`; returns how many were parsed."""
    if cache.file is None or not hasattr(os, "fork") or threading.active_count() != 1:
        return 0  # fork() with other threads alive could leave a lock held in the workers
    todo = []
    for path in files:
        try:
            stamp = stamp_of(path.stat())
        except OSError:
            continue
        cache.stamps[str(path)] = stamp  # the loader's stat of this file, taken once
        if cache.wants(path, stamp):
            todo.append(str(path))
    if len(todo) < MIN_FILES:
        return 0
    # Interleaved chunks: both workers get a fair share of big and small files.
    chunks = [todo[i::WORKERS * 8] for i in range(WORKERS * 8)]
    done = 0
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork")) as pool:
        for results in pool.map(_parse, chunks):
            for item in results:
                if item is not None:
                    cache.fresh[item[0]] = (item[1], item[2])
                    done += 1
    return done
