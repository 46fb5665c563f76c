"""Unit: the per-gateway duplicate filter (wire.py: (gateway, ep, seq))."""

from __future__ import annotations

import random

from hazmon.tracker.seqs import EPOCH_HISTORY, GatewaySeqs, SeqSet

A, B = 6120598016474632931, 42


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


def test_a_new_queue_epoch_starts_again_and_an_old_copy_stays_old() -> None:
    g = GatewaySeqs(A)
    assert all(g.add(A, i) for i in range(1, 11))
    assert g.add(B, 1), "a re-imaged gateway's seq 1 is new data"
    assert (g.epoch, g.epoch_changes) == (B, 1)
    assert not g.add(B, 1)
    assert not g.add(A, 10) and not g.add(A, 3), "late copies from the old queue are still duplicates"
    assert g.epoch == B, "a late copy does not make its epoch current again"
    assert g.add(A, 11), "an old-queue batch never seen is kept, in its own epoch"
    assert (g.epoch, g.epoch_changes, g.current.los, g.current.his) == (B, 1, [1], [1])
    assert g.add(B, 2) and (g.current.his, g.previous[A].his) == ([2], [11])


def test_old_epochs_are_kept_up_to_the_history_size() -> None:
    g = GatewaySeqs(0, max_gaps=0)
    g.add(0, 5)
    g.add(0, 9)  # no gap allowed: 6..8 given up
    assert g.abandoned == 3
    for epoch in range(1, EPOCH_HISTORY + 2):
        assert g.add(epoch, 1)
    assert g.epoch_changes == EPOCH_HISTORY + 1
    assert list(g.previous) == list(range(1, EPOCH_HISTORY + 1)), "epoch 0 is forgotten, oldest first"
    assert not g.add(1, 1)
    assert g.abandoned == 3, "a counter: what a forgotten epoch gave up still counts"


def test_gateway_seqs_row_roundtrip_and_a_row_from_before_epochs() -> None:
    g = GatewaySeqs(A, max_gaps=7)
    for seq in (1, 2, 5):
        g.add(A, seq)
    g.add(B, 1)
    row = g.to_row()
    assert row[0] == g.current.dumps() and row[1:3] == (B, 1)
    h = GatewaySeqs.from_row(*row, max_gaps=7)
    assert (h.epoch, h.epoch_changes, h.current.los, h.current.his) == (B, 1, [1], [1])
    assert (h.previous[A].los, h.previous[A].his, h.previous[A].max_gaps) == ([1, 5], [2, 5], 7)
    assert not h.add(A, 5) and not h.add(B, 1) and h.epoch == B
    # Schema 1 rows: only the seqs; the migration's defaults make them epoch 0 with no history.
    old = GatewaySeqs.from_row(SeqSet.loads("[[1],[40],0]").dumps(), 0, 0, "{}")
    assert (old.epoch, old.epoch_changes, old.previous, old.abandoned) == (0, 0, {}, 0)
    assert not old.add(0, 40) and old.add(A, 1) and old.epoch == A
