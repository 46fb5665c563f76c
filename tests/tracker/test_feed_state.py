"""Unit: ingest, flags and durable state, on the tiny inventory, without a broker."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from hazmon.tracker.expected import load_expectations
from hazmon.tracker.metrics import TrackerCollector
from hazmon.tracker.service import Tracker
from hazmon.tracker.settings import SettingsError, Thresholds, TrackerSettings, load_settings
from hazmon.tracker.store import SCHEMA_VERSION
from hazmon.wire import Batch, Sample, topic
from tracker.inventory import LAB_CODE, SHUTDOWN_CODE

T0 = 1_800_000_000.0
# The tracker's clock in these tests: after every sample they send (one stamped more than
# max_future_skew_seconds ahead of it would be refused).
NOW = T0 + 1000
DCS = (LAB_CODE, "dcs")
# In range, below every alarm set point of the lab plant's tag table.
GOOD = {"LT-101": 10.0, "TT-101": 25.0, "PT-101": 0.5, "FT-101": 100.0,
        "TT-201": 200.0, "PT-201": 4.0, "GT-101": 0.0, "GT-201": 0.0}
# Two queue epochs of the lab gateway: before and after it is re-imaged.
EP_A, EP_B = 6120598016474632931, 42


def payload(seq: int, samples: dict[str, float], ts: float, gw: str = LAB_CODE, src: str = "dcs",
            ep: int = 0) -> bytes:
    return Batch(gw, seq, src, tuple(Sample(t, ts, v) for t, v in samples.items()), epoch=ep).encode()


def gateway_metrics(t: Tracker, gw: str = LAB_CODE) -> dict[str, float]:
    """The per-gateway series of /metrics, by sample name."""
    return {s.name: s.value for fam in TrackerCollector(t).collect() for s in fam.samples
            if s.labels.get("gateway") == gw}


def make(inventory: Path, state: Path, clock: Callable[[], float] = lambda: NOW, **th: float) -> Tracker:
    settings = TrackerSettings(thresholds=Thresholds(**th))
    return Tracker(load_expectations(inventory, settings.thresholds), settings, state, clock=clock)


def test_duplicates_dropped_and_everything_survives_a_restart(inventory: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    t = make(inventory, state)
    top = topic("5101", LAB_CODE, "dcs")
    assert t.receive(top, payload(1, GOOD, T0)) == "accepted"
    assert t.receive(top, payload(2, {"LT-101": 11.0}, T0 + 1)) == "accepted"
    assert t.receive(top, payload(1, GOOD, T0)) == "duplicate"
    t.close()

    t = make(inventory, state)
    src = t.state.sources[DCS]
    assert (src.accepted, src.duplicates, src.duplicate_batches) == (9, 8, 1)
    assert src.tags["LT-101"].value == 11.0 and src.tags["TT-201"].value == 200.0
    assert t.receive(top, payload(2, {"LT-101": 99.0}, T0 + 1)) == "duplicate"
    assert t.receive(top, payload(3, {"LT-101": 12.0}, T0 + 2)) == "accepted"
    assert src.tags["LT-101"].value == 12.0
    t.close()


def test_a_reimaged_gateway_is_not_taken_for_duplicates(
        inventory: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state.db"
    t = make(inventory, state)
    top = topic("5101", LAB_CODE, "dcs")
    for seq in (1, 2, 4, 5):  # seq 3 not received yet
        assert t.receive(top, payload(seq, {"LT-101": 10.0 + seq}, T0 + seq, ep=EP_A)) == "accepted"
    assert gateway_metrics(t)["hazmon_tracker_gateway_missing_batches"] == 1
    # Re-imaged: the new queue numbers from 1 again, under a new epoch.
    with caplog.at_level(logging.INFO, logger="hazmon.tracker.state"):
        assert t.receive(top, payload(1, {"LT-101": 7.0}, T0 + 100, ep=EP_B)) == "accepted"
    assert f"new queue (epoch {EP_B}, was {EP_A})" in caplog.text
    src = t.state.sources[DCS]
    assert src.tags["LT-101"].value == 7.0
    assert t.receive(top, payload(1, {"LT-101": 99.0}, T0 + 100, ep=EP_B)) == "duplicate"
    # A late copy from the old queue: still a duplicate, and the new epoch stays current.
    assert t.receive(top, payload(5, {"LT-101": 99.0}, T0 + 5, ep=EP_A)) == "duplicate"
    assert t.receive(top, payload(2, {"LT-101": 8.0}, T0 + 101, ep=EP_B)) == "accepted"
    assert src.tags["LT-101"].value == 8.0
    assert (src.accepted, src.duplicate_batches) == (6, 2)
    m = gateway_metrics(t)
    assert m["hazmon_tracker_gateway_epoch_changes_total"] == 1
    assert m["hazmon_tracker_gateway_missing_batches"] == 0, "the old queue's missing seq 3 is not the new one's"
    t.close()

    t = make(inventory, state)  # a restart: the epochs and their seqs come back from the store
    assert t.receive(top, payload(1, {"LT-101": 99.0}, T0 + 100, ep=EP_B)) == "duplicate"
    assert t.receive(top, payload(4, {"LT-101": 99.0}, T0 + 4, ep=EP_A)) == "duplicate"
    assert t.receive(top, payload(3, {"LT-101": 13.0}, T0 + 3, ep=EP_A)) == "accepted"  # first delivery
    assert t.receive(top, payload(3, {"LT-101": 9.0}, T0 + 102, ep=EP_B)) == "accepted"
    assert t.state.gateways[LAB_CODE].epoch == EP_B
    assert gateway_metrics(t)["hazmon_tracker_gateway_epoch_changes_total"] == 1
    t.close()


# What a tracker of state schema 1 (before queue epochs) created, verbatim.
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (gateway TEXT PRIMARY KEY, seqs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
  enterprise TEXT NOT NULL, source TEXT NOT NULL,
  accepted REAL NOT NULL, duplicates REAL NOT NULL, duplicate_batches REAL NOT NULL,
  out_of_range_samples REAL NOT NULL, rate_violations REAL NOT NULL, alarm_crossings REAL NOT NULL,
  unknown_tag_samples REAL NOT NULL, last_sample_ts REAL NOT NULL, last_receive_ts REAL NOT NULL,
  PRIMARY KEY (enterprise, source)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
  enterprise TEXT NOT NULL, source TEXT NOT NULL, tag TEXT NOT NULL,
  ts REAL NOT NULL, value REAL NOT NULL, change_ts REAL NOT NULL, rate_violation_ts REAL NOT NULL,
  PRIMARY KEY (enterprise, source, tag)) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema', '1');
"""


def test_a_state_file_from_before_epochs_loads(inventory: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    db = sqlite3.connect(state)
    db.executescript(SCHEMA_1)
    db.execute("INSERT INTO gateways VALUES (?, ?)", (LAB_CODE, "[[1],[40],0]"))
    db.execute("INSERT INTO counters VALUES ('malformed_schema', 4)")
    db.execute("INSERT INTO sources VALUES (?, 'dcs', 40, 3, 3, 0, 0, 0, 0, ?, ?)", (LAB_CODE, T0, T0))
    db.execute("INSERT INTO tags VALUES (?, 'dcs', 'LT-101', ?, 12.5, ?, ?)", (LAB_CODE, T0, T0, T0 - 9))
    db.commit()
    db.close()

    t = make(inventory, state)
    src = t.state.sources[DCS]
    assert (src.accepted, src.duplicate_batches, src.tags["LT-101"].value) == (40, 3, 12.5)
    assert t.state.counters["malformed_schema"] == 4
    top = topic("5101", LAB_CODE, "dcs")
    # Its seqs are epoch 0's: what a collector from before epochs sends (no `ep`).
    assert t.receive(top, payload(40, {"LT-101": 99.0}, T0 + 1)) == "duplicate"
    assert t.receive(top, payload(41, {"LT-101": 13.0}, T0 + 1)) == "accepted"
    assert t.receive(top, payload(1, {"LT-101": 14.0}, T0 + 2, ep=EP_A)) == "accepted"
    t.close()

    t = make(inventory, state)
    assert t.state.gateways[LAB_CODE].epoch == EP_A
    assert t.receive(top, payload(41, {"LT-101": 99.0}, T0 + 1)) == "duplicate"
    assert t.receive(top, payload(1, {"LT-101": 99.0}, T0 + 2, ep=EP_A)) == "duplicate"
    assert t.state.sources[DCS].tags["LT-101"].value == 14.0
    t.close()
    db = sqlite3.connect(state)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(SCHEMA_VERSION),)
    db.close()


def test_malformed_and_unknown_senders_are_counted_not_kept(inventory: Path, tmp_path: Path) -> None:
    t = make(inventory, tmp_path / "s.db")
    assert t.receive(topic("5101", LAB_CODE, "dcs"), b"{not json") == "malformed"
    # N4: a gateway publishing under another enterprise's topic is refused.
    assert t.receive(topic("5101", SHUTDOWN_CODE, "dcs"), payload(1, GOOD, T0)) == "malformed"
    assert t.receive("other/topic", payload(1, GOOD, T0)) == "malformed"
    unknown = "91510100MALABE0099"
    assert t.receive(topic("5101", unknown, "dcs"), payload(1, GOOD, T0, gw=unknown)) == "unknown_enterprise"
    assert t.receive(topic("5101", LAB_CODE, "sis"), payload(1, GOOD, T0, src="sis")) == "unknown_source"
    assert t.receive(topic("5101", LAB_CODE, "dcs"), payload(1, {"XX-1": 1.0, "LT-101": 1.0}, T0)) == "accepted"
    c = t.state.counters
    assert (c["malformed_not_json"], c["malformed_topic_mismatch"], c["malformed_topic"]) == (1, 1, 1)
    assert (c["rejected_unknown_enterprise"], c["rejected_unknown_source"]) == (8, 8)
    assert t.state.sources[DCS].unknown_tag_samples == 1
    assert t.state.sources[DCS].accepted == 1
    t.close()


def test_flags_follow_the_thresholds(inventory: Path, tmp_path: Path) -> None:
    t = make(inventory, tmp_path / "s.db", flatline_seconds=60, min_window_seconds=10)
    top = topic("5101", LAB_CODE, "dcs")
    t.receive(top, payload(1, GOOD, T0))
    ev = t.evaluate(T0 + 1).sources[DCS]
    assert (ev.completeness, ev.stalled, ev.flatlined, ev.out_of_range, ev.rate_violation) == (1.0, False, 0, 0, 0)
    # 60 s of the same temperature: flatlined; a level jump of 15 m in 1 s: out of range and implausible.
    moved = {k: v + 0.5 for k, v in GOOD.items() if k != "TT-101"} | {"TT-101": 25.0}
    t.receive(top, payload(2, moved, T0 + 59))
    assert t.evaluate(T0 + 59.5).sources[DCS].flatlined == 0
    t.receive(top, payload(3, GOOD | {"LT-101": 25.0}, T0 + 60))
    ev = t.evaluate(T0 + 60.5).sources[DCS]
    assert (ev.flatlined, ev.out_of_range, ev.rate_violation) == (1, 1, 1)
    assert ev.in_alarm["high_high"] == 1  # LT-101 25 m ≥ alarm_high_high 18.5
    assert t.state.sources[DCS].alarm_crossings == 1
    # Gas detectors may jump: no rate limit by default.
    t.receive(top, payload(4, GOOD | {"LT-101": 25.0, "GT-101": 60.0}, T0 + 61))
    ev = t.evaluate(T0 + 61.5).sources[DCS]
    assert ev.rate_violation == 1 and ev.in_alarm["high_high"] == 2
    assert t.state.sources[DCS].alarm_crossings == 2
    # The shut-down plant (R4) is tracked but never expected: never stalled, no completeness.
    shut = t.evaluate(T0 + 1000).sources[(SHUTDOWN_CODE, "gds")]
    assert (shut.expected, shut.stalled) == (False, False)
    assert t.evaluate(T0 + 1000).sources[DCS].stalled
    t.close()


def test_a_replayed_backlog_does_not_overwrite_newer_values(inventory: Path, tmp_path: Path) -> None:
    t = make(inventory, tmp_path / "s.db")
    top = topic("5101", LAB_CODE, "dcs")
    t.receive(top, payload(10, {"LT-101": 12.0}, T0 + 10))
    t.receive(top, payload(9, {"LT-101": 30.0}, T0 + 9))  # older, out of range: counted, not current
    src = t.state.sources[DCS]
    assert src.tags["LT-101"].value == 12.0
    assert (src.accepted, src.out_of_range_samples) == (2, 1)
    assert t.evaluate(T0 + 11).sources[DCS].out_of_range == 0
    t.close()


def test_settings_file_errors_name_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "tracker.yml"
    bad.write_text("thresholds:\n  flatline_secs: 10\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"tracker\.yml.*thresholds\.flatline_secs"):
        load_settings(bad)
    good = tmp_path / "ok.yml"
    good.write_text("evaluate_every_seconds: 2\nthresholds: {flatline_seconds_by_kind: {level: 600}}\n",
                    encoding="utf-8")
    s = load_settings(good)
    assert s.evaluate_every_seconds == 2 and s.thresholds.flatline_after("level") == 600


def test_a_state_file_of_schema_2_is_migrated(inventory: Path, tmp_path: Path) -> None:
    """Schema 2 (queue epochs, before future_samples): what the trackers out there write today."""
    state = tmp_path / "state.db"
    t = make(inventory, state)
    t.receive(topic("5101", LAB_CODE, "dcs"), payload(1, GOOD, T0, ep=EP_A))
    t.close()
    db = sqlite3.connect(state)
    db.execute("ALTER TABLE gateways DROP COLUMN future_samples")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db.commit()
    db.close()
    t = make(inventory, state)
    assert t.receive(topic("5101", LAB_CODE, "dcs"), payload(1, GOOD, T0, ep=EP_A)) == "duplicate"
    assert gateway_metrics(t)["hazmon_tracker_gateway_future_samples_total"] == 0
    t.close()
    db = sqlite3.connect(state)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(SCHEMA_VERSION),)
    assert db.execute("SELECT future_samples FROM gateways").fetchall() == [(0,)]
    db.close()
