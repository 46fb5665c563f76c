#!/usr/bin/python
# hazmon: an NVR's GB/T 28181 platform access over ISAPI, then the wait for its registration (V2).
# Runs on the control node (ansible_connection local, python = ansible_playbook_python): the logic
# is hazmon.devices.gb28181, tested against the lab's NVR and registrar simulators.
from __future__ import annotations

DOCUMENTATION = r"""
module: hazmon_nvr_gb28181
short_description: Set an NVR's GB/T 28181 platform access and channel IDs over ISAPI, and wait for its registration
description:
  - >-
    Derives what the NVR must hold from the hazmon inventory model (O(inventory_root), O(enterprise), O(nvr)),
    namely the platform's SIP server ID, domain, registrar address and port, the NVR's 20-digit device ID, and
    the GB/T 28181 channel ID of every camera recorded on the NVR. Options given here override the model's values.
  - Reads the device first (C(GET /ISAPI/System/Network/SIP), C(.../SIP/1/SIPInfo)) and PUTs only what
    differs; reports C(changed) and a diff (the password never appears in it). Honours check mode.
  - The password is write-only on the device. It is sent with any other change, when O(force_password)
    is set, or when the platform's registrar does not list the device as registered; a device the
    registrar accepted holds the right password, so a second run changes nothing.
  - With O(wait_timeout) > 0 it then polls the registrar's status (O(status_url)) until the device is
    registered, online and reports every channel ID in its catalog, and fails naming V2, the device ID
    and what the registrar saw (for example a rejection and its reason).
  - O(state=absent) disables the platform access (decommission); settings and channel IDs stay on the device.
  - >-
    ISAPI goes over HTTPS by default (the inventory's C(isapi) record of the NVR says otherwise for a device
    without HTTPS); the device's certificate is verified against O(ca_file) and must name the address used.
  - >-
    N8 (secure transmission): the SIP password is never sent over plain HTTP unless
    O(insecure_secrets_over_http) is set; without it the module fails before changing anything.
  - Refuses an NVR whose inventory record says C(gb28181) is false (notice rule V2).
version_added: "0.5.0"
author: hazmon
extends_documentation_fragment:
  - hazmon_site
options:
  nvr:
    description: The NVR's name in the enterprise's record (C(hazmon_nvr_name)).
    type: str
    required: true
  state:
    description: C(present) enables and configures platform access; C(absent) disables it.
    type: str
    choices: [present, absent]
    default: present
  address:
    description: Host (and optional C(:port)) of the NVR's ISAPI; default the inventory's NVR address.
    type: str
  scheme:
    description: C(https) or C(http) for ISAPI; default the inventory's C(isapi.scheme) (C(https) unless recorded).
    type: str
    choices: [https, http]
  ca_file:
    description:
      - CA bundle on the control node that the NVR's HTTPS certificate must chain to.
      - Default the control node's system trust store.
    type: path
  insecure_secrets_over_http:
    description:
      - Explicit opt-in to send the SIP password to an NVR reached over plain HTTP (N8 forbids it otherwise).
      - Only for a device that has no HTTPS, on a network the operator vouches for.
    type: bool
    default: false
  username:
    description: ISAPI user.
    type: str
    default: admin
  password:
    description: ISAPI password (from the vault).
    type: str
    required: true
    no_log: true
  sip_password:
    description:
      - >-
        The NVR's GB/T 28181 registration password: its own (C(vault_sip_<slug>_<nvr>)) when the
        inventory's C(platform.sip.per_device_passwords) is true, else the province's (C(vault_sip_password)).
      - Required with O(state=present).
    type: str
    no_log: true
  server_id:
    description: 20-digit SIP server ID; default the inventory's C(platform.sip.server_id).
    type: str
  server_domain:
    description: 10-digit SIP domain; default the inventory's C(platform.sip.domain).
    type: str
  registrar:
    description: Registrar IPv4 address; default the inventory's C(platform.sip.host).
    type: str
  registrar_port:
    description: Registrar UDP port; default the inventory's C(platform.sip.port).
    type: int
  device_id:
    description: The NVR's 20-digit GB/T 28181 ID; default the inventory's C(device_id).
    type: str
  expires:
    description: Registration expiry in seconds.
    type: int
    default: 3600
  heartbeat_time:
    description: Keepalive interval in seconds.
    type: int
    default: 60
  heartbeat_count:
    description: Missed keepalives before the device registers again.
    type: int
    default: 3
  local_port:
    description: The NVR's own SIP port.
    type: int
    default: 5060
  status_url:
    description:
      - The registrar's status document (registrations.json).
      - Default the inventory's C(platform.sip.status_url).
    type: str
  force_password:
    description: Send the password even when the registrar proves the device holds it (after a rotation).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the registration after configuring (0 does not wait).
    type: int
    default: 120
  timeout:
    description: Seconds for each ISAPI request.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: GB28181 platform access of the NVR
  hazmon_nvr_gb28181:
    inventory_root: "{{ hazmon_inventory_root }}"
    enterprise: "{{ hazmon_enterprise }}"
    nvr: "{{ hazmon_nvr_name }}"
    password: "{{ lookup('ansible.builtin.vars', hazmon_nvr_credential) }}"
    sip_password: "{{ lookup('ansible.builtin.vars', _sip_credential) }}"
    ca_file: /etc/hazmon/nvr-ca.pem
    wait_timeout: 120
  vars:
    # The NVR's own password when the platform keeps one per device, else the province's.
    _sip_credential: "{{ hazmon_platform.sip | hazmon_sip_credential(hazmon_slug, hazmon_nvr_name) }}"
  no_log: true
"""

RETURN = r"""
gb28181:
  description: The platform-access fields the device holds afterwards (password left out).
  type: dict
  returned: always
channel_ids:
  description: Channel number -> GB/T 28181 ID, as the device holds them afterwards.
  type: dict
  returned: always
reasons:
  description: One line per difference found (field, old -> new), the password's reason included.
  type: list
  elements: str
  returned: always
password_sent:
  description: Whether the password was (or in check mode would be) sent.
  type: bool
  returned: always
registration:
  description: The registrar's record of the device (registered, online, channels, ...), when a status URL is known.
  type: dict
  returned: when a status URL is known
waited:
  description: Seconds spent waiting for the registration.
  type: float
  returned: when the module waited
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from hazmon.devices import gb28181
    from hazmon.devices.isapi import IsapiError
    from hazmon.devices.site import DeviceError, find_nvr, load_site
except ImportError as exc:  # pragma: no cover - the control node's python must have hazmon
    HAZMON_ERROR: ImportError | None = exc
else:
    HAZMON_ERROR = None

OVERRIDES = ("server_id", "server_domain", "registrar", "registrar_port", "device_id", "expires", "heartbeat_time",
             "heartbeat_count", "local_port", "status_url")


ARGUMENT_SPEC = dict(
    inventory_root=dict(type="path", required=True),
    enterprise=dict(type="str", required=True),
    nvr=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    address=dict(type="str"),
    scheme=dict(type="str", choices=["https", "http"]),
    ca_file=dict(type="path"),
    insecure_secrets_over_http=dict(type="bool", default=False),
    username=dict(type="str", default="admin"),
    password=dict(type="str", required=True, no_log=True),
    sip_password=dict(type="str", no_log=True),
    server_id=dict(type="str"),
    server_domain=dict(type="str"),
    registrar=dict(type="str"),
    registrar_port=dict(type="int"),
    device_id=dict(type="str"),
    expires=dict(type="int", default=3600),
    heartbeat_time=dict(type="int", default=60),
    heartbeat_count=dict(type="int", default=3),
    local_port=dict(type="int", default=5060),
    status_url=dict(type="str"),
    force_password=dict(type="bool", default=False, no_log=False),
    wait_timeout=dict(type="int", default=120),
    timeout=dict(type="float", default=10),
)


def run(module: AnsibleModule) -> dict:
    p = module.params
    inv, ent = load_site(p["inventory_root"], p["enterprise"])
    nvr = find_nvr(ent, p["nvr"])
    client = gb28181.nvr_client(ent, nvr, p["username"], p["password"], address=p["address"], scheme=p["scheme"],
                                ca_file=p["ca_file"], insecure_secrets_over_http=p["insecure_secrets_over_http"],
                                timeout=p["timeout"])
    if p["state"] == "absent":
        plan = gb28181.disable(client, check=module.check_mode)
        result = {"changed": plan.changed, "reasons": plan.reasons, "password_sent": False,
                  "gb28181": plan.after["gb28181"], "channel_ids": plan.after["channel_ids"]}
        if module._diff:
            result["diff"] = plan.diff()
        return result
    want = gb28181.target(inv, ent, nvr, {k: p[k] for k in OVERRIDES})
    out = gb28181.converge(client, want, p["sip_password"], check=module.check_mode,
                           force_password=p["force_password"], wait_timeout=p["wait_timeout"])
    plan = out.plan
    result = {"changed": out.changed, "reasons": plan.reasons, "password_sent": plan.send_password,
              "gb28181": plan.after["gb28181"], "channel_ids": plan.after["channel_ids"]}
    if out.registration is not None:
        result["registration"] = out.registration
    if out.waited is not None:
        result["waited"] = out.waited
    if module._diff:
        result["diff"] = plan.diff()
    if out.error:  # the device was changed all the same: say so
        module.fail_json(msg=out.error, **result)
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "present", ("sip_password",))])
    if HAZMON_ERROR is not None:
        module.fail_json(msg=f"hazmon is not importable by {module._name}'s python ({HAZMON_ERROR}): run it "
                             "on the control node with ansible_python_interpreter = ansible_playbook_python")
    try:
        result = run(module)
    except (DeviceError, IsapiError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)



if __name__ == "__main__":
    main()
