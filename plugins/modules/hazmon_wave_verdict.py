#!/usr/bin/python
"""Documentation of the action plugin plugins/action/hazmon_wave_verdict.py (it runs on the control node)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hazmon_wave_verdict
short_description: Whether the rollout goes on after a wave (the canary, failures counted per enterprise)
description:
  - Run once at the end of each wave of the rollout play (C(serial)), with C(any_errors_fatal). When the
    run must stop, it fails (C(stop) true, C(msg) saying why), which ends the run, and the later waves are
    not started. The ledger callback records that as the run's stop, not as a failure of the host.
  - The run stops when the wave is the first (the canary) and anything failed in it; when more than
    C(max_fail_percentage) of the wave's enterprises failed (an enterprise fails when any of its
    devices did); or when every device of one kind in the wave failed (e.g. every data-acquisition
    gateway). The rule is C(hazmon.rollout.verdict).
  - A host failed when it was in the wave at its start (C(hosts)) and is no longer active at its end
    (C(active), i.e. C(ansible_play_batch)).
version_added: "0.6.0"
author: hazmon
options:
  hosts:
    description: The wave's hosts when it started.
    type: list
    elements: str
    required: true
  active:
    description: The wave's hosts still active (C(ansible_play_batch)).
    type: list
    elements: str
    required: true
  canary:
    description: This is the first wave.
    type: bool
    required: true
  later_waves:
    description: Waves follow this one (after the last wave there is nothing to stop).
    type: bool
    required: true
  max_fail_percentage:
    description: Share of the wave's enterprises that may fail (exceeded, not equalled, stops the run).
    type: float
    default: 50
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: The wave's verdict
  hazmon_wave_verdict:
    hosts: "{{ _rollout_wave_hosts }}"
    active: "{{ ansible_play_batch }}"
    canary: "{{ _rollout_canary }}"
    later_waves: "{{ _rollout_later_waves }}"
    max_fail_percentage: 50
  run_once: true
  any_errors_fatal: true
"""

RETURN = r"""
stop:
  description: The run stops after this wave.
  returned: always
  type: bool
msg:
  description: What failed and, when the run stops, why.
  returned: always
  type: str
failed_hosts:
  description: The wave's hosts that failed.
  returned: always
  type: list
  elements: str
failed_enterprises:
  description: The enterprises any device of which failed.
  returned: always
  type: list
  elements: str
failed_kinds:
  description: Device kinds every device of which in the wave failed.
  returned: always
  type: list
  elements: str
"""
