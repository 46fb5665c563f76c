# hazmon_sip_credential: the vault variable holding the password an NVR registers with at the
# platform (N8): its own when province.yml platform.sip.per_device_passwords is true, else the
# province's. The naming is hazmon.inventory.secrets.sip_credential's (one place: the lab's vault
# and the registrar's password table are made from the same function).
from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def hazmon_sip_credential(platform_sip: Mapping[str, object], slug: str, nvr_name: str) -> str:
    """`platform_sip`: hazmon_platform.sip (the model's platform.sip); `slug`, `nvr_name`: the host's
    hazmon_slug and hazmon_nvr_name."""
    try:
        from hazmon.inventory.secrets import sip_credential
    except ImportError as exc:
        raise AnsibleFilterError(f"hazmon is not importable by ansible-playbook's Python: {exc}") from exc
    if not isinstance(platform_sip, Mapping):
        raise AnsibleFilterError(f"hazmon_sip_credential: expected hazmon_platform.sip (a mapping), got "
                                 f"{type(platform_sip).__name__}")
    return sip_credential(str(slug), str(nvr_name), bool(platform_sip.get("per_device_passwords", False)))


class FilterModule:
    def filters(self) -> dict:
        return {"hazmon_sip_credential": hazmon_sip_credential}
