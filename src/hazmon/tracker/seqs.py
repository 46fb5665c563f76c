"""Which seqs of one gateway have been seen: the duplicate filter (wire.py: (gw, ep, seq)).

Seqs are assigned when the collector queues a batch, so every seq eventually arrives, but
replays interleave with live data. The seen set is kept as sorted disjoint intervals: live
traffic extends the last one in O(1), a replay fills a gap, and the whole state of a gateway
that is caught up is one interval. This is the "contiguous watermark + sparse set" idea without
assuming where a gateway's seqs start (a tracker may first meet a gateway at seq 1,000,000, and
its backlog may still be replayed after that).

Seqs are unique only within one queue epoch (`ep`): a re-imaged, replaced or reset gateway's
queue numbers from 1 again under a new epoch. `GatewaySeqs` keeps a SeqSet per epoch: the
current one, and a few earlier ones only to drop late copies from those old queues.
"""

from __future__ import annotations

import json
from bisect import bisect_right

# Earlier epochs whose seqs are kept per gateway: a late copy from an old queue (still in the
# broker, or replayed by a gateway that was swapped back) is dropped, not taken for new data.
EPOCH_HISTORY = 3


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
        return cls.of(los, his, abandoned, max_gaps)

    @classmethod
    def of(cls, los: list[int], his: list[int], abandoned: int, max_gaps: int = 1000) -> SeqSet:
        out = cls(max_gaps)
        out.los, out.his, out.abandoned = [int(x) for x in los], [int(x) for x in his], int(abandoned)
        return out


class GatewaySeqs:
    """The seqs seen from one gateway, per queue epoch; dedup by (epoch, seq).

    A batch of an epoch not seen before starts a fresh SeqSet and its epoch becomes current (the
    gateway has a new queue). A batch of one of the last EPOCH_HISTORY epochs is checked against
    that epoch's set and never makes it current again. Gaps and missing batches are the current
    epoch's: the old queue is gone with its gateway's disk.
    """

    __slots__ = ("abandoned_before", "current", "epoch", "epoch_changes", "max_gaps", "previous")

    def __init__(self, epoch: int = 0, max_gaps: int = 1000) -> None:
        self.epoch = epoch
        self.current = SeqSet(max_gaps)
        self.previous: dict[int, SeqSet] = {}  # epoch -> its seqs, oldest first
        self.epoch_changes = 0
        # Seqs given up in epochs no longer kept: `abandoned` is a counter and must not fall.
        self.abandoned_before = 0
        self.max_gaps = max_gaps

    def add(self, epoch: int, seq: int) -> bool:
        """Record (epoch, seq); False when it was seen before (a duplicate)."""
        if epoch == self.epoch:
            return self.current.add(seq)
        old = self.previous.get(epoch)
        if old is not None:
            return old.add(seq)
        self.previous[self.epoch] = self.current
        if len(self.previous) > EPOCH_HISTORY:
            self.abandoned_before += self.previous.pop(next(iter(self.previous))).abandoned
        self.epoch, self.current = epoch, SeqSet(self.max_gaps)
        self.epoch_changes += 1
        return self.current.add(seq)

    @property
    def abandoned(self) -> int:
        return self.abandoned_before + self.current.abandoned + sum(s.abandoned for s in self.previous.values())

    def to_row(self) -> tuple[str, int, int, str]:
        """(seqs, epoch, epoch_changes, history) for the store; `seqs` is the current epoch's SeqSet."""
        history = {"abandoned": self.abandoned_before,
                   "epochs": [[ep, s.los, s.his, s.abandoned] for ep, s in self.previous.items()]}
        return self.current.dumps(), self.epoch, self.epoch_changes, json.dumps(history, separators=(",", ":"))

    @classmethod
    def from_row(cls, seqs: str, epoch: int, epoch_changes: int, history: str, max_gaps: int = 1000) -> GatewaySeqs:
        """The inverse of to_row; a row from before epochs (epoch 0, history "{}") loads as epoch 0."""
        out = cls(int(epoch), max_gaps)
        out.current = SeqSet.loads(seqs, max_gaps)
        out.epoch_changes = int(epoch_changes)
        raw = json.loads(history)
        out.abandoned_before = int(raw.get("abandoned", 0))
        for ep, los, his, abandoned in raw.get("epochs", []):
            out.previous[int(ep)] = SeqSet.of(los, his, abandoned, max_gaps)
        return out
