#!/usr/bin/python
"""Documentation of the action plugin plugins/action/hazmon_derive.py (it runs on the control node)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hazmon_derive
short_description: Derive what gateways and AI boxes need from the hazmon inventory model, on the control node
description:
  - For each host of C(hosts) (Ansible host names of access gateways, data-acquisition gateways and AI
    boxes), the management networks, the flows the box opens (firewall), and for a data-acquisition
    gateway the collector's configuration, secrets and serial ports (C(hazmon.rollout.gateway)).
  - Runs inside ansible-playbook (an action plugin), so use it with C(run_once) for a play batch (one
    model load for all its boxes).
  - A host the model cannot derive gets an C(error) entry instead, so that the role fails that host alone.
version_added: "0.5.0"
author: hazmon
options:
  hosts:
    description: Ansible host names.
    type: list
    elements: str
    required: true
  inventory:
    description: The hazmon inventory folder (C(hazmon_inventory_root)).
    type: path
    required: true
  management_prefix:
    description: Bits to which each platform address is widened into a management network.
    type: int
    default: 16
  metrics_port:
    description: The collector's metrics port (bound to the gateway's own address); unset, hazmon's default (9920).
    type: int
  secrets_dir:
    description: Where the collector reads its secrets; unset, systemd's credentials directory of hazmon-collector.
    type: path
  collector:
    description: Include the collector's configuration (false when only the flows are needed).
    type: bool
    default: true
  clock_sync_wait:
    description: >-
      Seconds the collector waits at start for its clock to be synchronised (its config's
      C(clock.sync_wait)); unset, the collector's default.
    type: float
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Derive the boxes' flows
  hazmon_derive:
    hosts: "{{ ansible_play_batch }}"
    inventory: "{{ hazmon_inventory_root }}"
    collector: false
  run_once: true
  register: derived
"""

RETURN = r"""
hosts:
  description: Host name to what was derived (management_networks, output, collector), or an error entry.
  returned: always
  type: dict
"""
