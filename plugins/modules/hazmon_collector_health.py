#!/usr/bin/python
"""Documentation of the action plugin plugins/action/hazmon_collector_health.py (it runs on the control node)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hazmon_collector_health
short_description: Wait until a hazmon collector is connected to the broker and queueing, or fail with why
description:
  - Reads the collector's /metrics from the control node (where the province's Prometheus reads it)
    until it shows C(hazmon_collector_uplink_connected) 1 and the queue taking samples
    (C(hazmon_collector_samples_queued_total) rising between two scrapes, or samples queued and every
    C(hazmon_collector_source_up) 1), within C(timeout) seconds.
  - Otherwise fails the host with what the metrics said (broker refusals, sources down, no answer at all)
    and the last C(journal_lines) lines of the unit's journal, read on the gateway.
  - The rule is C(hazmon.rollout.health). Nothing is checked in check mode.
version_added: "0.6.0"
author: hazmon
options:
  url:
    description: The collector's metrics URL (its configured metrics address and port).
    type: str
    required: true
  timeout:
    description: Seconds within which the collector must be connected and queueing.
    type: float
    default: 60
  unit:
    description: The collector's systemd unit (for its journal).
    type: str
    default: hazmon-collector
  journal_lines:
    description: How many lines of the unit's journal a failure shows.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: The collector is connected to the broker and queueing
  hazmon_collector_health:
    url: "http://198.19.1.3:9920/metrics"
    timeout: 60
"""

RETURN = r"""
msg:
  description: What the metrics said; on failure followed by the journal's tail.
  returned: always
  type: str
seconds:
  description: How long the check took.
  returned: when checked
  type: float
journal:
  description: The journal's tail, one line per item.
  returned: failed
  type: list
  elements: str
"""
