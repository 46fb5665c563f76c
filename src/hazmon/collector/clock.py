"""The gateway clock's NTP state, read from the kernel with adjtimex(2) (no D-Bus, no systemd needed).

Samples are stamped with this clock, so the platform must know whether to trust it. The kernel
knows whether a time daemon (chrony, systemd-timesyncd, ntpd) keeps it synchronised
(STA_UNSYNC clear, state not TIME_ERROR), its maximum and estimated error, and, when the
daemon uses the kernel PLL, the current offset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

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


def read_clock() -> ClockState | None:
    """The kernel's view (modes=0: read only). None where adjtimex is unavailable."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    tx = _Timex()
    state = libc.adjtimex(ctypes.byref(tx))
    if state < 0:
        return None
    synced = state != TIME_ERROR and not tx.status & STA_UNSYNC
    offset_unit = 1e-9 if tx.status & STA_NANO else 1e-6
    return ClockState(
        synced=bool(synced),
        max_error_seconds=tx.maxerror * 1e-6,  # microseconds, per adjtimex(2)
        estimated_error_seconds=tx.esterror * 1e-6,
        offset_seconds=tx.offset * offset_unit if tx.status & STA_PLL else None,
    )
