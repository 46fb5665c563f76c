"""The durable on-disk queue (SQLite, WAL): every sample stays here until the broker PUBACKs it.

A batch gets its sequence number in the same transaction that writes it, so a batch re-sent
after an outage or a crash carries the same (gateway, epoch, seq) and the tracker drops the copy.
The last seq lives in a meta row, so seqs keep increasing even when the queue is empty.

The queue's epoch, a random id made once with the database, goes with every batch (wire `ep`):
a re-imaged, replaced or reset gateway's queue numbers from 1 again, and only the new epoch
tells the tracker that its seq 1 is not a copy of the old queue's seq 1.
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hazmon.wire import MAX_EPOCH

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    first_ts REAL NOT NULL,
    n INTEGER NOT NULL,
    samples TEXT NOT NULL      -- the wire's "samples" array, JSON, ready to splice into a message
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('last_seq', 0), ('enqueued_samples', 0), ('dropped_samples', 0);
"""


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    source: str
    n: int
    samples: str


def encode_samples(samples: Iterable[tuple[str, float, float]]) -> str:
    return json.dumps(
        [{"t": t, "ts": ts, "v": v} for t, ts, v in samples], separators=(",", ":"), ensure_ascii=False
    )


@dataclass
class Put:
    seq: int
    dropped: int  # samples of older batches dropped to make room (queue_full)


class DurableQueue:
    """Thread-safe: pollers write, the uplink thread reads and acks, the scrape reads depth."""

    def __init__(self, path: Path, max_samples: int, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        # Made once, with the database (a queue from before epochs gets one on its first open);
        # never 0, which on the wire means "no epoch".
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (1 + secrets.randbelow(MAX_EPOCH),))
        self.epoch: int = self._meta("epoch")
        n, count = self._db.execute("SELECT COALESCE(SUM(n), 0), COUNT(*) FROM batches").fetchone()
        self.depth_samples: int = n
        self.depth_batches: int = count

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._meta("last_seq")

    @property
    def enqueued_samples(self) -> int:
        """Samples ever committed (durable; the zero-loss tests compare it with what arrived)."""
        with self._lock:
            return self._meta("enqueued_samples")

    def put(self, source: str, samples: Sequence[tuple[str, float, float]]) -> Put:
        """Commit one batch and give it the next seq; drop the oldest batches if the cap is reached."""
        if not samples:
            raise ValueError("an empty batch has no seq")
        payload = encode_samples(samples)
        first_ts = min(ts for _, ts, _ in samples)
        n = len(samples)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._make_room(n)
                seq = self._meta("last_seq") + 1
                self._db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                                 (seq, source, first_ts, n, payload))
                self._db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (seq,))
                self._db.execute("UPDATE meta SET value=value+? WHERE key='enqueued_samples'", (n,))
                if dropped:
                    self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped_samples'", (dropped,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.depth_samples += n - dropped
            self.depth_batches += 1
            return Put(seq, dropped)

    def _make_room(self, n: int) -> int:
        """Policy when full: drop the oldest batches (the newest data matters most for alarms)."""
        dropped = 0
        while self.depth_samples - dropped + n > self.max_samples:
            row = self._db.execute("SELECT seq, n FROM batches ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM batches WHERE seq=?", (row[0],))
            dropped += row[1]
            self.depth_batches -= 1
        return dropped

    def put_many(self, batches: Sequence[tuple[str, Sequence[tuple[str, float, float]]]]) -> list[int]:
        """Commit many batches in one transaction (the bench pre-fills a backlog this way)."""
        seqs = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._meta("last_seq")
            total = 0
            for source, samples in batches:
                seq += 1
                self._db.execute(
                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                    (seq, source, min(ts for _, ts, _ in samples), len(samples), encode_samples(samples)),
                )
                total += len(samples)
                seqs.append(seq)
            self._db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (seq,))
            self._db.execute("UPDATE meta SET value=value+? WHERE key='enqueued_samples'", (total,))
            self._db.execute("COMMIT")
            self.depth_samples += total
            self.depth_batches += len(batches)
        return seqs

    def fetch(self, after: int, upto: int | None, limit: int) -> list[Row]:
        """Batches with after < seq <= upto, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, source, n, samples FROM batches WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (after, upto if upto is not None else 2**62, limit),
            ).fetchall()
        return [Row(*r) for r in rows]

    def ack(self, seqs: Sequence[int]) -> int:
        """Delete acknowledged batches; returns the samples removed (0 for seqs already dropped)."""
        if not seqs:
            return 0
        removed = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for seq in seqs:
                row = self._db.execute("DELETE FROM batches WHERE seq=? RETURNING n", (seq,)).fetchone()
                if row is not None:
                    removed += row[0]
                    self.depth_batches -= 1
            self._db.execute("COMMIT")
            self.depth_samples -= removed
        return removed

    def oldest_ts(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT first_ts FROM batches ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])



def finite(samples: Iterable[tuple[str, float, float]]) -> tuple[list[tuple[str, float, float]], int]:
    """Split off NaN/inf values: JSON cannot carry them and the tracker would reject the whole batch."""
    items = list(samples)
    good = [s for s in items if math.isfinite(s[2])]
    return good, len(items) - len(good)
