"""The wave's verdict (hazmon.rollout.verdict, used by plugins/action/hazmon_wave_verdict.py): the
first wave is a canary, and failures are counted per enterprise and per device kind, not per host.
The rollout play applying it: tests/rollout/test_rollout_play_waves.py."""

from __future__ import annotations

import pytest

from hazmon.rollout.verdict import WaveHost, verdict

KINDS = {"agw": "access_gateway", "daq": "daq_gateway", "aibox": "ai_box", "nvr": "nvr"}


def wave(*enterprises: str) -> list[WaveHost]:
    return [WaveHost(f"{e}-{short}", e.upper(), kind) for e in enterprises for short, kind in KINDS.items()]


def names(hosts: list[WaveHost], *failed: str) -> list[str]:
    return [h.name for h in hosts if h.name not in failed]


def test_any_failure_in_the_canary_stops_the_run():
    hosts = wave("e1")
    v = verdict(hosts, names(hosts, "e1-nvr"), canary=True, later_waves=True, max_fail_percentage=50)
    assert v.stop and "canary" in v.msg and v.failed_hosts == ["e1-nvr"] and v.failed_enterprises == ["E1"]
    ok = verdict(hosts, names(hosts), canary=True, later_waves=True, max_fail_percentage=50)
    assert not ok.stop and ok.msg == "0 of the wave's 1 enterprise(s) failed: the run goes on"


def test_every_data_acquisition_gateway_failing_stops_the_run():
    """A quarter of the hosts (Ansible's count stays under 50 %), every enterprise and every daq gateway."""
    hosts = wave("e2", "e3")
    v = verdict(hosts, names(hosts, "e2-daq", "e3-daq"), canary=False, later_waves=True, max_fail_percentage=50)
    assert v.stop and v.failed_kinds == ["daq_gateway"]
    assert "every device of a kind failed: daq_gateway (2)" in v.msg and "100 % of its enterprises" in v.msg
    # The same kind failing everywhere in a wave of four where it is half the enterprises: still stops.
    hosts = wave("e2", "e3") + [WaveHost(f"{e}-agw", e.upper(), "access_gateway") for e in ("e4", "e5")]
    v = verdict(hosts, names(hosts, "e2-daq", "e3-daq"), canary=False, later_waves=True, max_fail_percentage=50)
    assert v.stop and v.failed_kinds == ["daq_gateway"] and "more than max_fail_percentage" not in v.msg


def test_the_share_of_enterprises_must_be_exceeded_not_equalled():
    hosts = wave("e1", "e2", "e3", "e4")
    half = verdict(hosts, names(hosts, "e1-agw", "e2-nvr"), canary=False, later_waves=True, max_fail_percentage=50)
    assert not half.stop and half.failed_enterprises == ["E1", "E2"] and half.msg.endswith("the run goes on")
    more = verdict(hosts, names(hosts, "e1-agw", "e2-nvr", "e3-aibox"), canary=False, later_waves=True,
                   max_fail_percentage=50)
    assert more.stop and "75 % of its enterprises failed, more than max_fail_percentage 50 %" in more.msg
    strict = verdict(hosts, names(hosts, "e1-agw"), canary=False, later_waves=True, max_fail_percentage=0)
    assert strict.stop


def test_after_the_last_wave_there_is_nothing_to_stop():
    hosts = wave("e1")
    v = verdict(hosts, [], canary=True, later_waves=False, max_fail_percentage=50)
    assert not v.stop and v.msg.endswith("it was the last wave")


def test_a_percentage_outside_0_to_100_is_refused():
    with pytest.raises(ValueError, match="give 0 to 100"):
        verdict(wave("e1"), [], canary=False, later_waves=True, max_fail_percentage=150)
