"""The gateway clock's NTP state, read from the kernel with adjtimex(2) (no D-Bus, no systemd needed).

Samples are stamped with this clock, so the platform must know whether to trust it. The kernel
knows whether a time daemon (chrony, systemd-timesyncd, ntpd) keeps it synchronised
(STA_UNSYNC clear, state not TIME_ERROR), its maximum and estimated error, and, when the
daemon uses the kernel PLL, the current offset.

The reader is passed in (ClockReader) wherever it is used, so that tests can give any clock
state without touching the machine's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TIME_ERROR = 5
STA_PLL = 0x0001
STA_UNSYNC = 0x0040
STA_NANO = 0x2000


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux, LP64 and ILP32 alike: longs and ints, natural alignment)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True, slots=True)
class ClockState:
    synced: bool
    max_error_seconds: float
    estimated_error_seconds: float
    offset_seconds: float | None  # only when the daemon disciplines the kernel PLL


def _adjtimex() -> tuple[int, _Timex] | OSError:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return OSError(0, "no C library to call adjtimex(2) from")
    libc = ctypes.CDLL(libc_name, use_errno=True)
    tx = _Timex()  # modes=0: read only
    state = libc.adjtimex(ctypes.byref(tx))
    if state < 0:
        err = ctypes.get_errno()
        return OSError(err, os.strerror(err))
    return state, tx


def read_clock() -> ClockState | None:
    """The kernel's view (modes=0: read only). None where adjtimex is unavailable."""
    got = _adjtimex()
    if isinstance(got, OSError):
        return None
    state, tx = got
    synced = state != TIME_ERROR and not tx.status & STA_UNSYNC
    offset_unit = 1e-9 if tx.status & STA_NANO else 1e-6
    return ClockState(
        synced=bool(synced),
        max_error_seconds=tx.maxerror * 1e-6,  # microseconds, per adjtimex(2)
        estimated_error_seconds=tx.esterror * 1e-6,
        offset_seconds=tx.offset * offset_unit if tx.status & STA_PLL else None,
    )


def unreadable_reason() -> str:
    """Why read_clock() gives None, for the log."""
    got = _adjtimex()
    if not isinstance(got, OSError):
        return "adjtimex(2) answers now"
    if got.errno == errno.EPERM:
        return ("adjtimex(2): operation not permitted (a systemd unit forbids even reading the clock's "
                "state with ProtectClock=yes, or with a SystemCallFilter= allow-list without adjtimex: "
                "@system-service has none)")
    return f"adjtimex(2): {got.strerror}"


ClockReader = Callable[[], ClockState | None]


@dataclass(frozen=True, slots=True)
class SyncWait:
    synced: bool | None  # None: the clock's state cannot be read
    waited: float  # seconds


async def wait_for_sync(
    read: ClockReader,
    limit: float,
    stop: asyncio.Event,
    *,
    interval: float = 1.0,
    log_every: float = 15.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> SyncWait:
    """Wait until the kernel reports the clock synchronised, at most `limit` seconds (or until
    `stop`), logging while it waits and when it gives up. Samples are stamped with this clock,
    so the collector should not poll with a clock no time daemon has set yet (after a power cut
    a gateway may come up with a clock that is minutes or years off)."""
    start = monotonic()
    state = read()
    if state is None:
        log.warning("cannot tell whether the clock is synchronised: %s; polling without waiting "
                    "(hazmon_collector_clock_readable is 0)", unreadable_reason())
        return SyncWait(None, 0.0)
    if state.synced:
        return SyncWait(True, 0.0)
    if limit <= 0:
        log.warning("the clock is not synchronised (kernel max error %.3f s); polling without waiting "
                    "(clock.sync_wait is 0)", state.max_error_seconds)
        return SyncWait(False, 0.0)
    log.warning("the clock is not synchronised (kernel max error %.3f s): waiting up to %.0f s for "
                "the time daemon before polling", state.max_error_seconds, limit)
    next_log = start + log_every
    while not stop.is_set():
        now = monotonic()
        if now - start >= limit:
            log.error("the clock is still not synchronised after %.0f s: polling anyway; samples are "
                      "stamped with an unsynchronised clock (check chrony/timesyncd and its server)", limit)
            return SyncWait(False, now - start)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(interval, limit - (now - start)))
        state = read()
        now = monotonic()
        if state is not None and state.synced:
            log.info("the clock is synchronised (after %.1f s)", now - start)
            return SyncWait(True, now - start)
        if now >= next_log:
            log.warning("still waiting for the clock to be synchronised (%.0f of %.0f s)", now - start, limit)
            next_log += log_every
    return SyncWait(False, monotonic() - start)
