"""Delivered but unconfirmed batches, and which of them the province demonstrably did not get.

The broker's PUBACK marks a batch *delivered*; only the tracker's committed-seqs message
(wire.Committed) lets the queue delete it. The broker hands messages to the tracker in the
order it accepted them, so when a batch delivered after s (beyond the in-flight window, whose
order the broker may mix) is confirmed and s is not, the broker lost s (a queue limit, a crash
before its snapshot): s is sent again once its PUBACK is older than `resend_after`. While the
tracker confirms nothing (it is down), nothing is re-sent: no duplicate flood.

Memory only, by design: after a restart every unconfirmed row is backlog and is replayed
(the retained committed-seqs message arriving first removes what was already committed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Delivery:
    ordinal: int  # counts PUBACKs: the order in which the broker accepted the batches
    at: float  # monotonic time of the PUBACK


class Custody:
    """Owned by the uplink's sender thread (not thread-safe)."""

    def __init__(self, slack: int, resend_after: float) -> None:
        self.slack = slack
        self.resend_after = resend_after
        # In ordinal order, which is also PUBACK-time order: the oldest candidates come first.
        self._delivered: OrderedDict[int, Delivery] = OrderedDict()
        self._ordinal = 0
        self.confirmed_ordinal = 0  # the highest ordinal of a batch seen confirmed

    def __len__(self) -> int:
        return len(self._delivered)

    def __contains__(self, seq: int) -> bool:
        return seq in self._delivered

    def delivered(self, seq: int, now: float) -> None:
        self._ordinal += 1
        self._delivered.pop(seq, None)  # a re-sent batch takes its new place in the order
        self._delivered[seq] = Delivery(self._ordinal, now)

    def confirmed(self, seqs: Iterable[int]) -> int:
        """Forget confirmed batches; the count of those that were delivered in this process's life."""
        n = 0
        for seq in seqs:
            d = self._delivered.pop(seq, None)
            if d is not None:
                n += 1
                self.confirmed_ordinal = max(self.confirmed_ordinal, d.ordinal)
        return n

    def due(self, now: float) -> list[int]:
        """Delivered batches the province demonstrably did not get: made undelivered, to send again."""
        out: list[int] = []
        limit = self.confirmed_ordinal - self.slack
        while self._delivered:
            seq, d = next(iter(self._delivered.items()))
            # Both tests fail for every later entry once they fail for this one (ordinal and
            # time grow together), so the scan stops at the first that is not due.
            if d.ordinal >= limit or now - d.at < self.resend_after:
                break
            self._delivered.popitem(last=False)
            out.append(seq)
        return out

    def forget(self, seq: int) -> None:
        """The row is gone (dropped at the queue cap, or deleted by an earlier message)."""
        self._delivered.pop(seq, None)
