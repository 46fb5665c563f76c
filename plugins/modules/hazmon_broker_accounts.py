#!/usr/bin/python
"""Documentation of the action plugin plugins/action/hazmon_broker_accounts.py (it runs on the control node)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hazmon_broker_accounts
short_description: List the province MQTT broker's accounts from the hazmon inventory
description:
  - Loads and validates the hazmon inventory at O(inventory) on the control node and returns one
    account per data-acquisition gateway of an enterprise that is not in long-term shutdown (R4),
    plus the province feed tracker's account.
  - Each account names the vault variable holding its password, never the password itself.
  - Runs inside ansible-playbook on the control node (an action plugin); it imports the hazmon
    package, which must be importable by the Python running Ansible.
  - Reads only; never reports a change.
version_added: "0.1.0"
author: hazmon
options:
  inventory:
    description: The inventory folder (the one holding C(province.yml) and C(cities/)).
    type: path
    required: true
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Read the broker's accounts from the model
  hazmon_broker_accounts:
    inventory: "{{ hazmon_inventory_root }}"
  delegate_to: localhost
  run_once: true
  check_mode: false
  register: _accounts
"""

RETURN = r"""
max_packet_size:
  description: >-
    The largest MQTT packet the broker may accept, in bytes (hazmon.broker.MAX_PACKET_BYTES,
    derived from the wire format's payload limit).
  returned: always
  type: int
accounts:
  description: The accounts, gateways by enterprise code first, then the tracker.
  returned: always
  type: list
  elements: dict
  contains:
    user:
      description: MQTT user name (the enterprise code for a gateway).
      type: str
    credential:
      description: Name of the vault variable holding the account's password.
      type: str
    rights:
      description: >-
        What the account may do, as Mosquitto ACL lines: a gateway writes its own enterprise's
        data topic and reads its own committed-seqs topic; the tracker reads every data topic and
        writes the committed-seqs topics (custody, docs/wire.md).
      type: list
      elements: dict
      contains:
        access:
          description: C(read) or C(write).
          type: str
        topic:
          description: The topic filter the account may use that way.
          type: str
    enterprise:
      description: The gateway's enterprise code, empty for the tracker.
      type: str
"""
