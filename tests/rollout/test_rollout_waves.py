"""The waves preflight cuts for the rollout play of the same run (filter hazmon_rollout_serial in
plugins/filter): whole enterprises per wave, over the hosts that came through, with the arithmetic
`hazmon rollout` itself reports (runner.serial_for)."""

from __future__ import annotations

import importlib.util

import pytest
from ansible.errors import AnsibleFilterError

from hazmon.rollout.runner import DEFAULT_WAVES, PROJECT_ROOT, serial_for

_spec = importlib.util.spec_from_file_location("hazmon_rollout_filter",
                                              PROJECT_ROOT / "plugins/filter/hazmon_rollout.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
waves = _mod.FilterModule().filters()["hazmon_rollout_serial"]

# Each host's enterprise, hosts sorted by name (as `order: sorted` runs them).
HOSTS = ["E1"] * 5 + ["E2"] * 3 + ["E3"] * 5 + ["E4"] * 4 + ["E5"] * 2


def test_waves_hold_whole_enterprises() -> None:
    assert waves(HOSTS, ["1", "25%", "100%"]) == [5, 3, 11]
    assert waves(HOSTS, ["1", "100%"]) == [5, 14]
    assert waves(HOSTS, [2]) == [8, 9, 2]  # counts may come as numbers (YAML)


def test_same_waves_as_the_summary_and_the_default() -> None:
    by_ent = {e: [i for i, x in enumerate(HOSTS) if x == e] for e in dict.fromkeys(HOSTS)}
    assert waves(HOSTS) == serial_for(list(by_ent), by_ent, DEFAULT_WAVES)
    assert waves(HOSTS, None) == waves(HOSTS, list(DEFAULT_WAVES))


def test_no_host_came_through() -> None:
    assert waves([], ["1", "100%"]) == []


def test_an_enterprise_split_by_another_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="hosts of E1 are not adjacent"):
        waves(["E1", "E2", "E1"])


@pytest.mark.parametrize("bad", [["0"], ["a few"], ["x%"]])
def test_a_wave_that_is_not_a_count_or_percentage_is_refused(bad: list[str]) -> None:
    with pytest.raises(AnsibleFilterError, match=r"hazmon_rollout_serial: waves"):
        waves(HOSTS, bad)
