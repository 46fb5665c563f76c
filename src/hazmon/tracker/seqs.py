"""Which seqs of one gateway have been seen: the duplicate filter (wire.py: seq per gateway).

Seqs are assigned when the collector queues a batch, so every seq eventually arrives, but
replays interleave with live data. The seen set is kept as sorted disjoint intervals: live
traffic extends the last one in O(1), a replay fills a gap, and the whole state of a gateway
that is caught up is one interval. This is the "contiguous watermark + sparse set" idea without
assuming where a gateway's seqs start (a tracker may first meet a gateway at seq 1,000,000, and
its backlog may still be replayed after that).
"""

from __future__ import annotations

import json
from bisect import bisect_right


class SeqSet:
    __slots__ = ("abandoned", "his", "los", "max_gaps")

    def __init__(self, max_gaps: int = 1000) -> None:
        self.los: list[int] = []
        self.his: list[int] = []
        self.max_gaps = max_gaps
        # Seqs given up when a gateway has too many gaps (its queue overflowed, say): counted
        # so that the loss is visible; a late arrival in a given-up gap is taken for a duplicate.
        self.abandoned = 0

    def add(self, seq: int) -> bool:
        """Record `seq`; False when it was seen before (a duplicate)."""
        los, his = self.los, self.his
        if his and seq == his[-1] + 1:  # the live path
            his[-1] = seq
            return True
        i = bisect_right(los, seq) - 1
        if i >= 0 and seq <= his[i]:
            return False
        join_left = i >= 0 and his[i] + 1 == seq
        join_right = i + 1 < len(los) and los[i + 1] - 1 == seq
        if join_left and join_right:
            his[i] = his[i + 1]
            del los[i + 1], his[i + 1]
        elif join_left:
            his[i] = seq
        elif join_right:
            los[i + 1] = seq
        else:
            los.insert(i + 1, seq)
            his.insert(i + 1, seq)
            if len(los) - 1 > self.max_gaps:
                self.abandoned += los[1] - his[0] - 1
                his[0] = his[1]
                del los[1], his[1]
        return True

    def __contains__(self, seq: int) -> bool:
        i = bisect_right(self.los, seq) - 1
        return i >= 0 and seq <= self.his[i]

    @property
    def gaps(self) -> int:
        return max(len(self.los) - 1, 0)

    @property
    def missing(self) -> int:
        """Seqs not yet seen between the lowest and the highest seen: batches still to be replayed."""
        return sum(self.los[i + 1] - self.his[i] - 1 for i in range(len(self.los) - 1))

    @property
    def highest(self) -> int | None:
        return self.his[-1] if self.his else None

    def dumps(self) -> str:
        return json.dumps([self.los, self.his, self.abandoned], separators=(",", ":"))

    @classmethod
    def loads(cls, text: str, max_gaps: int = 1000) -> SeqSet:
        los, his, abandoned = json.loads(text)
        out = cls(max_gaps)
        out.los, out.his, out.abandoned = [int(x) for x in los], [int(x) for x in his], int(abandoned)
        return out
