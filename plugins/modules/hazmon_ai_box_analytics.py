#!/usr/bin/python
# hazmon: render an AI box's analytics configuration from the inventory model.
# Runs on the control node (delegate_to localhost, python = ansible_playbook_python): the logic is
# hazmon.devices.analytics (the algorithm table lives there, once). Read-only: the role installs
# the returned content with ansible.builtin.copy.
from __future__ import annotations

DOCUMENTATION = r"""
module: hazmon_ai_box_analytics
short_description: Render the AI box's video analytics per camera location from the hazmon inventory
description:
  - Loads the model (O(inventory_root)) and renders the enterprise's analytics document, camera by camera, from
    where each camera looks (fireworks 1.1-class workshops and warehouses and drying-yard entrances, V4;
    duty room, tank farms, warehouses, production units, V5), with each camera's NVR, channel and GB/T 28181
    channel ID.
  - Read-only, never changed; runs in check mode too. The text is stable (same model, same bytes).
version_added: "0.5.0"
author: hazmon
extends_documentation_fragment:
  - hazmon_site
options:
  overrides:
    description:
      - >-
        Per camera, per algorithm, parameter values replacing the defaults,
        e.g. C({cam-ws: {head_count_limit: {max_persons: 3}}}) (a workshop's approved staffing).
      - An unknown camera, algorithm or parameter fails.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Render the analytics configuration
  hazmon_ai_box_analytics:
    inventory_root: "{{ hazmon_inventory_root }}"
    enterprise: "{{ hazmon_enterprise }}"
  delegate_to: localhost
  register: _analytics
"""

RETURN = r"""
content:
  description: The file's text (JSON).
  type: str
  returned: always
analytics:
  description: Camera name -> the algorithms it runs.
  type: dict
  returned: always
cameras:
  description: How many cameras the document holds.
  type: int
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from hazmon.devices import analytics
    from hazmon.devices.site import DeviceError, load_site
except ImportError as exc:  # pragma: no cover - the control node's python must have hazmon
    HAZMON_ERROR: ImportError | None = exc
else:
    HAZMON_ERROR = None

ARGUMENT_SPEC = dict(
    inventory_root=dict(type="path", required=True),
    enterprise=dict(type="str", required=True),
    overrides=dict(type="dict", default={}),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if HAZMON_ERROR is not None:
        module.fail_json(msg=f"hazmon is not importable by this python ({HAZMON_ERROR}): delegate to the control "
                             "node with ansible_python_interpreter = ansible_playbook_python")
    try:
        _, ent = load_site(module.params["inventory_root"], module.params["enterprise"])
        doc = analytics.render(ent, module.params["overrides"])
    except DeviceError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, content=analytics.dumps(doc), analytics=analytics.summary(doc),
                     cameras=len(doc["cameras"]))


if __name__ == "__main__":
    main()
