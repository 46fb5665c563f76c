"""Durable tracker state in SQLite (WAL): last values, per-source counters, seen seqs.

A flush writes everything that changed since the previous one in one transaction, so the dedup
state and the values it guards never disagree on disk. The service acknowledges MQTT messages
only after the flush that holds them has committed.

Schema 2 added the queue epochs to `gateways` (a re-imaged gateway's queue numbers from 1 again):
`seqs` stays the current epoch's seen seqs, as before; a schema 1 file is migrated on open, its
seqs becoming epoch 0's (what batches without `ep` carry). Schema 3 added `future_samples` to
`gateways` (samples refused for a time stamp ahead of the tracker's clock).

A failed write ("database is locked", disk full, an I/O error) leaves no transaction open: it is
rolled back, whatever statement failed (COMMIT included), and the error goes to the caller, who
tries again with the same rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from hazmon.tracker.seqs import GatewaySeqs, SeqSet
from hazmon.tracker.state import SOURCE_FIELDS, Dirty, FeedState

SCHEMA_VERSION = 3

# Columns schema 2 added to `gateways`; a migrated row gets the defaults: epoch 0, no history.
_GATEWAY_COLUMNS_2 = (
    "epoch INTEGER NOT NULL DEFAULT 0",
    "epoch_changes INTEGER NOT NULL DEFAULT 0",
    "history TEXT NOT NULL DEFAULT '{}'",  # GatewaySeqs.to_row: the earlier epochs' seqs, JSON
)

_GATEWAY_COLUMNS_3 = ("future_samples INTEGER NOT NULL DEFAULT 0",)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
  gateway TEXT PRIMARY KEY, seqs TEXT NOT NULL,  -- seqs: SeqSet.dumps of the current epoch
  {", ".join(_GATEWAY_COLUMNS_2 + _GATEWAY_COLUMNS_3)});
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
  enterprise TEXT NOT NULL, source TEXT NOT NULL,
  {", ".join(f"{f} REAL NOT NULL" for f in SOURCE_FIELDS)},
  PRIMARY KEY (enterprise, source)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
  enterprise TEXT NOT NULL, source TEXT NOT NULL, tag TEXT NOT NULL,
  ts REAL NOT NULL, value REAL NOT NULL, change_ts REAL NOT NULL, rate_violation_ts REAL NOT NULL,
  PRIMARY KEY (enterprise, source, tag)) WITHOUT ROWID;
"""

_UPSERT_TAG = "INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?, ?, ?, ?)"
_UPSERT_GATEWAY = ("INSERT OR REPLACE INTO gateways (gateway, seqs, epoch, epoch_changes, history, future_samples) "
                   "VALUES (?, ?, ?, ?, ?, ?)")
_UPSERT_SOURCE = f"INSERT OR REPLACE INTO sources VALUES ({', '.join('?' * (2 + len(SOURCE_FIELDS)))})"
_INT_FIELDS = SOURCE_FIELDS[:7]
# Columns each older schema lacks: a file of that schema is migrated on open.
_MIGRATIONS = {1: _GATEWAY_COLUMNS_2 + _GATEWAY_COLUMNS_3, 2: _GATEWAY_COLUMNS_3}


class StateError(RuntimeError):
    pass


class Store:
    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The store is used from the MQTT thread and the flush timer, one at a time (service lock).
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process; a power cut may lose the
        # last commits, whose messages the broker then redelivers only if not yet acknowledged.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) in _MIGRATIONS:
            self._migrate(int(row[0]))
        elif int(row[0]) != SCHEMA_VERSION:
            raise StateError(f"{path}: state schema {row[0]}, this tracker reads {SCHEMA_VERSION}")

    def _migrate(self, version: int) -> None:
        """Add the later columns in one transaction; an older tracker then refuses the file."""
        def body(db: sqlite3.Connection) -> None:
            for column in _MIGRATIONS[version]:
                db.execute(f"ALTER TABLE gateways ADD COLUMN {column}")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))

        self._transaction(body)

    def _transaction(self, body: Callable[[sqlite3.Connection], None]) -> None:
        """Run `body(db)` in one write transaction; on any error roll back (if still open) and raise."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            body(db)
            db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) may or may not have ended the transaction.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def write(self, dirty: Dirty) -> None:
        def body(db: sqlite3.Connection) -> None:
            db.executemany(_UPSERT_TAG, dirty.tags)
            db.executemany(_UPSERT_SOURCE, dirty.sources)
            db.executemany(_UPSERT_GATEWAY, dirty.gateways)
            db.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)", dirty.counters)

        self._transaction(body)

    def purge_future(self, latest: float) -> dict[str, int]:
        """Forget tag values stamped after `latest` (a state file from before the future-skew
        check): the value is untrustworthy and newer real samples would be taken for replays.
        The tag reads as never seen until its next sample; each is counted as a refused future
        sample of its gateway; a source's newest-sample time falls back to its tags'. Returns the
        count per gateway (enterprise code)."""
        counts = dict(self.db.execute(
            "SELECT enterprise, COUNT(*) FROM tags WHERE ts > ? GROUP BY enterprise", (latest,)).fetchall())
        if not counts:
            return {}

        def body(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM tags WHERE ts > ?", (latest,))
            db.execute(
                "UPDATE sources SET last_sample_ts = coalesce((SELECT max(t.ts) FROM tags t WHERE "
                "t.enterprise = sources.enterprise AND t.source = sources.source), -9e999) "
                "WHERE last_sample_ts > ?", (latest,))
            db.executemany("UPDATE gateways SET future_samples = future_samples + ? WHERE gateway = ?",
                           [(n, gw) for gw, n in counts.items()])

        self._transaction(body)
        return counts

    def load_into(self, state: FeedState) -> None:
        rows = self.db.execute("SELECT gateway, seqs, epoch, epoch_changes, history, future_samples FROM gateways")
        for gw, seqs, epoch, epoch_changes, history, future in rows:
            state.gateways[gw] = GatewaySeqs.from_row(seqs, epoch, epoch_changes, history, max_gaps=state.max_seq_gaps)
            if future:
                state.future_samples[gw] = int(future)
        for name, value in self.db.execute("SELECT name, value FROM counters"):
            state.counters[name] = int(value)
        for row in self.db.execute("SELECT * FROM sources"):
            values = tuple(
                int(v) if f in _INT_FIELDS else float(v) for f, v in zip(SOURCE_FIELDS, row[2:], strict=True)
            )
            state.restore_source((row[0], row[1]), values)
        for ent, src, tag, *rest in self.db.execute("SELECT * FROM tags"):
            state.restore_tag((ent, src), tag, tuple(rest))

    def close(self) -> None:
        self.db.close()


def read_seen(path: Path) -> dict[str, tuple[int, SeqSet]]:
    """Each gateway's current queue epoch and its seen (committed) seqs, read-only from a state
    file: what the lab's tools and the tests compare with what the gateways queued."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT gateway, epoch, seqs FROM gateways").fetchall()
    finally:
        db.close()
    return {gw: (int(epoch), SeqSet.loads(seqs)) for gw, epoch, seqs in rows}
