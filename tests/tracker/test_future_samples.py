"""Unit: a sample stamped in the future never becomes a tag's value (it would hide an alarm).

The gateway's clock is the sample's time (wire.py `ts`); a gateway that boots with a clock hours
ahead, then is corrected, must not leave a future value that makes every real sample after it
look like a late replay.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from hazmon.tracker.expected import load_expectations
from hazmon.tracker.metrics import TrackerCollector
from hazmon.tracker.service import Tracker
from hazmon.tracker.settings import TrackerSettings
from hazmon.wire import Batch, Sample, topic
from tracker.inventory import LAB_CODE

NOW = 1_800_000_000.0  # the tracker's clock
DCS = (LAB_CODE, "dcs")
TOP = topic("5101", LAB_CODE, "dcs")


def payload(seq: int, samples: list[tuple[str, float, float]]) -> bytes:
    return Batch(LAB_CODE, seq, "dcs", tuple(Sample(t, ts, v) for t, ts, v in samples)).encode()


def make(inventory: Path, state: Path, now: float = NOW) -> Tracker:
    settings = TrackerSettings()  # the defaults: this is what a deployment runs
    return Tracker(load_expectations(inventory, settings.thresholds), settings, state, clock=lambda: now)


def future_metric(t: Tracker) -> float | None:
    for fam in TrackerCollector(t).collect():
        for s in fam.samples:
            if s.name == "hazmon_tracker_gateway_future_samples_total" and s.labels == {"gateway": LAB_CODE}:
                return s.value
    return None


def test_a_future_sample_does_not_hide_a_high_high_alarm(inventory: Path, tmp_path: Path) -> None:
    t = make(inventory, tmp_path / "s.db")
    assert t.receive(TOP, payload(1, [("LT-101", NOW - 3, 10.0)])) == "accepted"
    # The gateway's clock an hour ahead for one poll: LT-101 dated NOW + 3600; TT-101 of the same
    # batch is stamped right (another source of time on the gateway, say): it is kept.
    assert t.receive(TOP, payload(2, [("LT-101", NOW + 3600, 10.0), ("TT-101", NOW - 2, 30.0)])) == "accepted"
    # The clock corrected, the tank's level crosses high-high (18.5 m).
    assert t.receive(TOP, payload(3, [("LT-101", NOW - 1, 19.0)])) == "accepted"
    assert t.receive(TOP, payload(4, [("LT-101", NOW, 19.2)])) == "accepted"

    ev = t.evaluate(NOW + 1).sources[DCS]
    tag = t.state.sources[DCS].tags["LT-101"]
    assert (tag.value, tag.ts, tag.alarm) == (19.2, NOW, "high_high")
    assert ev.in_alarm["high_high"] == 1
    assert t.state.sources[DCS].tags["TT-101"].value == 30.0  # the rest of the batch kept
    assert t.state.sources[DCS].last_sample_ts == NOW
    # And the level goes stale when the samples stop, instead of looking fresh for an hour.
    assert t.evaluate(NOW + 60).sources[DCS].fresh_tags == 0
    assert future_metric(t) == 1
    t.close()


def test_future_samples_are_counted_per_gateway_across_restarts(inventory: Path, tmp_path: Path) -> None:
    skew = TrackerSettings().max_future_skew_seconds
    t = make(inventory, tmp_path / "s.db")
    t.receive(TOP, payload(1, [("LT-101", NOW + skew, 1.0), ("TT-101", NOW + skew + 0.5, 2.0),
                               ("PT-101", NOW + 86400 * 365, 0.3)]))
    src = t.state.sources[DCS]
    assert src.tags["LT-101"].value == 1.0  # within the bound: kept
    assert "TT-101" not in src.tags and "PT-101" not in src.tags
    assert src.accepted == 1 and future_metric(t) == 2
    t.close()
    t = make(inventory, tmp_path / "s.db")
    assert future_metric(t) == 2
    t.receive(TOP, payload(2, [("LT-101", NOW + 3600, 1.0)]))
    assert future_metric(t) == 3
    t.close()


def test_a_future_value_in_an_older_state_file_is_forgotten(
        inventory: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "s.db"
    t = make(inventory, state)
    t.receive(TOP, payload(1, [("LT-101", NOW - 5, 10.0), ("TT-101", NOW - 4, 30.0)]))
    t.close()
    # What a tracker without the check left behind: LT-101 and its source dated an hour ahead.
    with sqlite3.connect(state) as db:
        db.execute("UPDATE tags SET ts = ?, change_ts = ? WHERE tag = 'LT-101'", (NOW + 3600, NOW + 3600))
        db.execute("UPDATE sources SET last_sample_ts = ? WHERE source = 'dcs'", (NOW + 3600,))
    db.close()

    with caplog.at_level(logging.WARNING, logger="hazmon.tracker.service"):
        t = make(inventory, state)
    assert "forgot 1 tag values stamped in the future" in caplog.text and LAB_CODE in caplog.text
    src = t.state.sources[DCS]
    assert "LT-101" not in src.tags  # never seen, until its next sample
    assert src.tags["TT-101"].value == 30.0
    assert src.last_sample_ts == NOW - 4
    assert future_metric(t) == 1
    assert t.receive(TOP, payload(2, [("LT-101", NOW - 1, 19.0)])) == "accepted"
    assert src.tags["LT-101"].alarm == "high_high"
    t.close()
    t = make(inventory, state)  # forgotten once, counted once
    assert future_metric(t) == 1 and t.state.sources[DCS].tags["LT-101"].value == 19.0
    t.close()
