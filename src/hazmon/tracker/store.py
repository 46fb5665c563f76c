"""Durable tracker state in SQLite (WAL): last values, per-source counters, seen seqs.

A flush writes everything that changed since the previous one in one transaction, so the dedup
state and the values it guards never disagree on disk. The service acknowledges MQTT messages
only after the flush that holds them has committed.

Schema 2 added the queue epochs to `gateways` (a re-imaged gateway's queue numbers from 1 again):
`seqs` stays the current epoch's seen seqs, as before; a schema 1 file is migrated on open, its
seqs becoming epoch 0's (what batches without `ep` carry).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hazmon.tracker.seqs import GatewaySeqs
from hazmon.tracker.state import SOURCE_FIELDS, Dirty, FeedState

SCHEMA_VERSION = 2

# Columns schema 2 added to `gateways`; a migrated row gets the defaults: epoch 0, no history.
_GATEWAY_COLUMNS_2 = (
    "epoch INTEGER NOT NULL DEFAULT 0",
    "epoch_changes INTEGER NOT NULL DEFAULT 0",
    "history TEXT NOT NULL DEFAULT '{}'",  # GatewaySeqs.to_row: the earlier epochs' seqs, JSON
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
  gateway TEXT PRIMARY KEY, seqs TEXT NOT NULL,  -- seqs: SeqSet.dumps of the current epoch
  {", ".join(_GATEWAY_COLUMNS_2)});
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
_UPSERT_GATEWAY = ("INSERT OR REPLACE INTO gateways (gateway, seqs, epoch, epoch_changes, history) "
                   "VALUES (?, ?, ?, ?, ?)")
_UPSERT_SOURCE = f"INSERT OR REPLACE INTO sources VALUES ({', '.join('?' * (2 + len(SOURCE_FIELDS)))})"
_INT_FIELDS = SOURCE_FIELDS[:7]


class StateError(RuntimeError):
    pass


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The store is used from the MQTT thread and the flush timer, one at a time (service lock).
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process; a power cut may lose the
        # last commits, whose messages the broker then redelivers only if not yet acknowledged.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) == 1:
            self._migrate_from_1()
        elif int(row[0]) != SCHEMA_VERSION:
            raise StateError(f"{path}: state schema {row[0]}, this tracker reads {SCHEMA_VERSION}")

    def _migrate_from_1(self) -> None:
        """Add the epoch columns in one transaction; a tracker of schema 1 then refuses the file."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for column in _GATEWAY_COLUMNS_2:
                db.execute(f"ALTER TABLE gateways ADD COLUMN {column}")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def write(self, dirty: Dirty) -> None:
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(_UPSERT_TAG, dirty.tags)
            db.executemany(_UPSERT_SOURCE, dirty.sources)
            db.executemany(_UPSERT_GATEWAY, dirty.gateways)
            db.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)", dirty.counters)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def load_into(self, state: FeedState) -> None:
        for gw, *row in self.db.execute("SELECT gateway, seqs, epoch, epoch_changes, history FROM gateways"):
            state.gateways[gw] = GatewaySeqs.from_row(*row, max_gaps=state.max_seq_gaps)
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
