"""Unit: the per-gateway duplicate filter (wire.py: (gateway, seq))."""

from __future__ import annotations

import random

from hazmon.tracker.seqs import SeqSet


def test_live_then_duplicates() -> None:
    s = SeqSet()
    assert all(s.add(i) for i in range(1, 101))
    assert not any(s.add(i) for i in range(1, 101))
    assert (s.los, s.his) == ([1], [100])


def test_replays_interleaved_with_live_data_fill_gaps() -> None:
    s = SeqSet()
    for seq in (1, 2, 3, 10, 11, 4, 12, 5, 6, 13, 7, 8, 9):
        assert s.add(seq), seq
    assert (s.los, s.his, s.gaps, s.missing) == ([1], [13], 0, 0)


def test_random_order_accepts_each_seq_exactly_once() -> None:
    rng = random.Random(7)
    seqs = list(range(5000)) * 3
    rng.shuffle(seqs)
    s = SeqSet(max_gaps=5000)
    accepted = [q for q in seqs if s.add(q)]
    assert sorted(accepted) == list(range(5000))
    assert s.gaps == 0


def test_seqs_below_the_first_seen_are_not_duplicates() -> None:
    # A tracker may meet a gateway mid-stream; its backlog (lower seqs) must still count once.
    s = SeqSet()
    assert s.add(1_000_000)
    assert s.add(999_998) and s.add(999_999)
    assert not s.add(999_998)
    assert s.missing == 0


def test_too_many_gaps_abandons_the_oldest_and_counts_it() -> None:
    s = SeqSet(max_gaps=2)
    for seq in (0, 2, 4, 6):  # three gaps: 1, 3, 5
        s.add(seq)
    assert s.gaps == 2 and s.abandoned == 1
    assert 1 in s  # given up: a late copy of seq 1 is taken for a duplicate
    assert s.add(3) and s.add(5)
    assert s.gaps == 0


def test_dump_and_load_roundtrip() -> None:
    s = SeqSet()
    for seq in (5, 6, 9, 20):
        s.add(seq)
    t = SeqSet.loads(s.dumps())
    assert (t.los, t.his, t.abandoned) == (s.los, s.his, s.abandoned)
    assert not t.add(9) and t.add(7)
