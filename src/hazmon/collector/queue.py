"""The durable on-disk queue (SQLite, WAL): every sample stays here until the province has it.

A batch gets its sequence number in the same transaction that writes it, so a batch re-sent
after an outage or a crash carries the same (gateway, epoch, seq) and the tracker drops the copy.
The last seq lives in a meta row, so seqs keep increasing even when the queue is empty.

The queue's epoch, a random id made once with the database, goes with every batch (wire `ep`):
a re-imaged, replaced or reset gateway's queue numbers from 1 again, and only the new epoch
tells the tracker that its seq 1 is not a copy of the old queue's seq 1.

Rows are deleted when the province tracker says it committed them (`delete_committed`, custody:
docs/wire.md) or, with `queue.delete_on: puback`, on the broker's PUBACK (`ack`).

Every transaction is rolled back when any of its statements fails (a full disk, a lock), so one
failed statement never leaves the connection inside a transaction that makes every later write
fail. A database SQLite reports as corrupt when it is opened is moved aside (`open_queue`) and a
new queue, with a new epoch, is started: the collector must not crash-loop on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hazmon.wire import MAX_EPOCH, MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)

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

# A corrupt database is renamed to <name>.corrupt-<UTC time> (its -wal beside it, as SQLite names it).
CORRUPT_SUFFIX = ".corrupt-"
# Room a message needs around its "samples" array (envelope of wireformat.message, generously).
ENVELOPE_BYTES = 1024

SampleT = tuple[str, float, float]  # tag code, timestamp (Unix s), engineering value


class QueueCorrupt(Exception):
    """SQLite says the queue database is not a database or is damaged."""


def is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    source: str
    n: int
    samples: str


def encode_samples(samples: Iterable[SampleT]) -> str:
    return json.dumps(
        [{"t": t, "ts": ts, "v": v} for t, ts, v in samples], separators=(",", ":"), ensure_ascii=False
    )


def split_encoded(samples: Sequence[SampleT], max_bytes: int) -> list[tuple[str, Sequence[SampleT]]]:
    """The samples as wire JSON arrays of at most max_bytes (UTF-8) each, in order.

    One array in the common case; a source of many tags with long codes is split so that no
    message exceeds wire.MAX_PAYLOAD_BYTES (the tracker and the broker refuse larger ones).
    """
    whole = encode_samples(samples)
    # UTF-8 takes at most 4 bytes a character: most batches need no encoding to know they fit.
    if len(whole) * 4 <= max_bytes or len(whole.encode()) <= max_bytes:
        return [(whole, samples)]
    out: list[tuple[str, Sequence[SampleT]]] = []
    parts: list[str] = []
    start, size = 0, 2  # the brackets
    for i, s in enumerate(samples):
        part = encode_samples([s])[1:-1]
        n = len(part.encode())
        if n + 2 > max_bytes:
            raise ValueError(f"one sample of tag {s[0][:40]!r} takes {n} bytes (limit {max_bytes})")
        if parts and size + 1 + n > max_bytes:
            out.append(("[" + ",".join(parts) + "]", samples[start:i]))
            parts, start, size = [], i, 2
        size += n + (1 if parts else 0)
        parts.append(part)
    out.append(("[" + ",".join(parts) + "]", samples[start:]))
    return out


@dataclass(frozen=True, slots=True)
class Put:
    seq: int  # the last seq given (a tick split into several batches gets consecutive seqs)
    dropped: int  # samples of older batches dropped to make room (queue_full)
    batches: int = 1


@dataclass(frozen=True, slots=True)
class Deleted:
    seqs: tuple[int, ...]
    samples: int


class DurableQueue:
    """Thread-safe: pollers write, the uplink thread reads and deletes, the scrape reads depth."""

    def __init__(self, path: Path, max_samples: int, synchronous: str = "FULL",
                 max_batch_bytes: int = MAX_PAYLOAD_BYTES - ENVELOPE_BYTES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_samples = max_samples
        self.max_batch_bytes = max_batch_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._open(synchronous)
        except BaseException as exc:
            self._db.close()
            if is_corrupt(exc):
                raise QueueCorrupt(f"{path}: {exc}") from exc
            raise

    def _open(self, synchronous: str) -> None:
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        # A damaged file may open and still fail at its first read of a bad page: check every page
        # now (once, at start), so that damage is found here and not as a stream of failed writes.
        problems = [r[0] for r in self._db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise QueueCorrupt(f"{self.path}: {'; '.join(problems)}")
        with self._tx():
            # Statement by statement: executescript would COMMIT the open transaction first.
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            # Made once, with the database (a queue from before epochs gets one on its first
            # open); never 0, which on the wire means "no epoch".
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (1 + secrets.randbelow(MAX_EPOCH),))
        self.epoch: int = self._meta("epoch")
        n, count = self._db.execute("SELECT COALESCE(SUM(n), 0), COUNT(*) FROM batches").fetchone()
        self.depth_samples: int = n
        self.depth_batches: int = count

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction: committed as a whole, or rolled back on any error (the caller
        holds the lock). In-memory depth is updated by the caller only after this returns."""
        if self._db.in_transaction:  # never expected; if it happens, do not let it stop every write
            log.error("queue %s: a transaction was left open; rolling it back", self.path)
            self._rollback()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite rolls some failures back by itself (SQLITE_FULL, SQLITE_IOERR): then there is
        # no transaction left to roll back.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("queue %s: rollback failed: %s", self.path, exc)

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

    def put(self, source: str, samples: Sequence[SampleT]) -> Put:
        """Commit one tick's samples as one batch (several if one message could not hold them), each
        with the next seq; drop the oldest batches if the cap is reached. All or nothing."""
        if not samples:
            raise ValueError("an empty batch has no seq")
        chunks = split_encoded(samples, self.max_batch_bytes)
        n = len(samples)
        with self._lock:
            with self._tx():
                dropped, dropped_batches = self._make_room(n)
                seq = self._meta("last_seq")
                for payload, part in chunks:
                    seq += 1
                    self._db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                                     (seq, source, min(ts for _, ts, _ in part), len(part), payload))
                self._db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (seq,))
                self._db.execute("UPDATE meta SET value=value+? WHERE key='enqueued_samples'", (n,))
                if dropped:
                    self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped_samples'", (dropped,))
            self.depth_samples += n - dropped
            self.depth_batches += len(chunks) - dropped_batches
            return Put(seq, dropped, len(chunks))

    def _make_room(self, n: int) -> tuple[int, int]:
        """Policy when full: drop the oldest batches (the newest data matters most for alarms).
        Unconfirmed batches count like any other: the cap bounds the disk, whatever the province does."""
        dropped = batches = 0
        while self.depth_samples - dropped + n > self.max_samples:
            row = self._db.execute("DELETE FROM batches WHERE seq = (SELECT MIN(seq) FROM batches) "
                                   "RETURNING n").fetchone()
            if row is None:
                break
            dropped += row[0]
            batches += 1
        return dropped, batches

    def put_many(self, batches: Sequence[tuple[str, Sequence[SampleT]]]) -> list[int]:
        """Commit many batches in one transaction (the bench pre-fills a backlog this way)."""
        seqs = []
        with self._lock:
            total = 0
            with self._tx():
                seq = self._meta("last_seq")
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

    def fetch_seqs(self, seqs: Sequence[int]) -> list[Row]:
        """The batches of these seqs that are still queued, in seq order."""
        if not seqs:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, source, n, samples FROM batches WHERE seq IN "
                f"({','.join('?' * len(seqs))}) ORDER BY seq", tuple(seqs),
            ).fetchall()
        return [Row(*r) for r in rows]

    def ack(self, seqs: Sequence[int]) -> int:
        """Delete batches by seq (queue.delete_on: puback); the samples removed (0 for seqs gone)."""
        if not seqs:
            return 0
        removed = batches = 0
        with self._lock:
            with self._tx():
                for seq in seqs:
                    row = self._db.execute("DELETE FROM batches WHERE seq=? RETURNING n", (seq,)).fetchone()
                    if row is not None:
                        removed += row[0]
                        batches += 1
            self.depth_samples -= removed
            self.depth_batches -= batches
        return removed

    def delete_committed(self, ranges: Iterable[tuple[int, int]], upto: int) -> Deleted:
        """Delete the batches the province committed: seqs in the inclusive ranges, none above
        `upto` (the last seq when the message arrived: nothing written later can be committed).
        One DELETE per range, all in one transaction."""
        seqs: list[int] = []
        removed = 0
        with self._lock:
            with self._tx():
                for lo, hi in ranges:
                    if lo > upto:
                        break
                    for seq, n in self._db.execute(
                        "DELETE FROM batches WHERE seq BETWEEN ? AND ? RETURNING seq, n", (lo, min(hi, upto))
                    ).fetchall():
                        seqs.append(seq)
                        removed += n
            self.depth_samples -= removed
            self.depth_batches -= len(seqs)
        return Deleted(tuple(seqs), removed)

    def oldest_ts(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT first_ts FROM batches ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def corrupt_files(self) -> int:
        """Corrupt queue databases kept aside beside this one (each waits for an operator)."""
        return count_corrupt(self.path)


def count_corrupt(path: Path) -> int:
    return sum(1 for p in path.parent.glob(f"{path.name}{CORRUPT_SUFFIX}*")
               if not p.name.endswith(("-wal", "-shm", "-journal")))


def move_aside(path: Path, now: float) -> Path:
    """Rename a corrupt queue database (and its WAL) to <name>.corrupt-<UTC time>; drop its -shm
    (an index of the WAL that SQLite rebuilds). Returns the new name of the database."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside = path.with_name(f"{path.name}{CORRUPT_SUFFIX}{stamp}")
    k = 1
    while aside.exists():  # two in one second: keep both
        k += 1
        aside = path.with_name(f"{path.name}{CORRUPT_SUFFIX}{stamp}.{k}")
    path.rename(aside)
    for suffix in ("-wal", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    path.with_name(path.name + "-shm").unlink(missing_ok=True)
    return aside


def open_queue(path: Path, max_samples: int, synchronous: str = "FULL",
               max_batch_bytes: int = MAX_PAYLOAD_BYTES - ENVELOPE_BYTES,
               now: float | None = None) -> tuple[DurableQueue, Path | None]:
    """Open the queue; a corrupt one is moved aside (logged, returned) and a new one started.

    The new queue draws a new epoch, so its seqs, which start again at 1, are new data to the
    tracker. What the corrupt file still holds stays readable there for an operator.
    """
    try:
        return DurableQueue(path, max_samples, synchronous, max_batch_bytes), None
    except QueueCorrupt as exc:
        aside = move_aside(path, time.time() if now is None else now)
        log.error("queue %s is corrupt (%s): moved aside to %s; starting a new queue (new epoch). "
                  "Batches it held that the province had not committed are in that file.", path, exc, aside)
        return DurableQueue(path, max_samples, synchronous, max_batch_bytes), aside


def finite(samples: Iterable[SampleT]) -> tuple[list[SampleT], int]:
    """Split off NaN/inf values: JSON cannot carry them and the tracker would reject the whole batch."""
    items = list(samples)
    good = [s for s in items if math.isfinite(s[2])]
    return good, len(items) - len(good)
