#!/usr/bin/python
# hazmon: reserve the monitoring switch's two N6 ports (AI box, NVR) through netmiko.
# Runs on the control node (ansible_connection local, python = ansible_playbook_python): the logic
# is hazmon.devices.switchports, tested against the lab's Huawei and H3C switch simulators.
from __future__ import annotations

DOCUMENTATION = r"""
module: hazmon_switch_ports
short_description: Describe and reserve the monitoring switch's ports for the AI box and the NVR (N6)
description:
  - Picks the ports from the hazmon inventory model (O(inventory_root), O(enterprise)) with the N6 rule's own
    port lists, a port marked for the AI box or the NVR first, else the first free ports in inventory order.
  - Reads the running configuration (C(display current-configuration)) and sends only what differs
    (description C(hazmon:<role> <host>), access link type, the VLAN, C(undo shutdown)); creates the VLAN when
    missing; saves the configuration after a change; reports C(changed) and a diff. Honours check mode.
  - A port still carrying a C(hazmon:) description that the inventory no longer reserves is released.
  - Reports each reserved port's link state; a port with its link down is a warning, not a failure
    (nothing plugged in yet).
  - O(state=absent) releases every port with a C(hazmon:) description (back to a free port) and saves.
  - Drives netmiko's C(huawei) (VRP, C(port default vlan)) and C(hp_comware) (Comware, C(port access vlan)).
version_added: "0.5.0"
author: hazmon
extends_documentation_fragment:
  - hazmon_site
options:
  state:
    description: C(present) reserves the two ports; C(absent) releases every hazmon port.
    type: str
    choices: [present, absent]
    default: present
  device_type:
    description: netmiko device type; default the inventory's switch C(device_type).
    type: str
    choices: [huawei, hp_comware]
  host:
    description: SSH address; default the inventory's switch address.
    type: str
  port:
    description: SSH port.
    type: int
    default: 22
  username:
    description: SSH user.
    type: str
    default: admin
  password:
    description: SSH password (from the vault).
    type: str
    required: true
    no_log: true
  vlan:
    description:
      - VLAN of the reserved ports (a port's own C(vlan) in the inventory wins).
      - Default the switch's C(vlan) in the inventory.
    type: int
  timeout:
    description: Seconds for the SSH connection and login.
    type: float
    default: 20
"""

EXAMPLES = r"""
- name: Reserve the AI box's and the NVR's switch ports (N6)
  hazmon_switch_ports:
    inventory_root: "{{ hazmon_inventory_root }}"
    enterprise: "{{ hazmon_enterprise }}"
    device_type: "{{ hazmon_switch_device_type }}"
    password: "{{ lookup('ansible.builtin.vars', hazmon_switch_credential) }}"
    vlan: "{{ hazmon_switch_vlan }}"
"""

RETURN = r"""
ports:
  description:
    - The reserved ports, each with port, role (ai_box, nvr), description, vlan
      and link (up, down, admin-down).
  type: list
  elements: dict
  returned: with state=present
commands:
  description: The configuration commands sent (or, in check mode, that would be sent).
  type: list
  elements: str
  returned: always
released:
  description: Ports given back (hazmon description removed).
  type: list
  elements: str
  returned: always
saved:
  description: Whether the configuration was saved.
  type: bool
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from hazmon.devices import switchports
    from hazmon.devices.site import DeviceError, find_switch, load_site
except ImportError as exc:  # pragma: no cover - the control node's python must have hazmon
    HAZMON_ERROR: ImportError | None = exc
else:
    HAZMON_ERROR = None

ARGUMENT_SPEC = dict(
    inventory_root=dict(type="path", required=True),
    enterprise=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    device_type=dict(type="str", choices=["huawei", "hp_comware"]),
    host=dict(type="str"),
    port=dict(type="int", default=22),
    username=dict(type="str", default="admin"),
    password=dict(type="str", required=True, no_log=True),
    vlan=dict(type="int"),
    timeout=dict(type="float", default=20),
)


def run(module: AnsibleModule) -> dict:
    p = module.params
    _, ent = load_site(p["inventory_root"], p["enterprise"])
    sw = find_switch(ent)
    device_type = p["device_type"] or sw.device_type
    dialect = switchports.dialect(device_type)
    wanted = switchports.reservations(ent, sw, p["vlan"]) if p["state"] == "present" else None
    session = switchports.connect(device_type, p["host"] or str(sw.address), p["username"], p["password"],
                                  port=p["port"], timeout=p["timeout"])
    try:
        res = switchports.run(session, dialect, wanted, check=module.check_mode,
                              switch_name=f"{sw.name} of {ent.code}")
    finally:
        switchports.close(session)
    for warning in res.warnings:
        module.warn(warning)
    result = {"changed": res.changed, "commands": res.commands, "released": res.released, "saved": res.saved}
    if wanted is not None:
        result["ports"] = res.ports
    if module._diff:
        result["diff"] = res.diff
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if HAZMON_ERROR is not None:
        module.fail_json(msg=f"hazmon is not importable by this python ({HAZMON_ERROR}): run it on the control "
                             "node with ansible_python_interpreter = ansible_playbook_python")
    try:
        result = run(module)
    except DeviceError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # netmiko's read timeouts and the like: say which switch and what
        module.fail_json(msg=f"switch of {module.params['enterprise']}: {type(exc).__name__}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
