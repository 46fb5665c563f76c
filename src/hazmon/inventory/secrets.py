"""Secrets: the inventory names them; an ansible-vault file holds them.

The lab's vault is generated (random values, random vault password in a 0600 file beside it),
never committed; a real environment's vault is made by the ops team with `ansible-vault`.
"""

from __future__ import annotations

import os
import re
import secrets as _random
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from ansible.parsing.vault import VaultLib

from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Enterprise

VAULT_PASS_FILE = ".vault-pass"
VAULT_FILE = Path("group_vars") / "all" / "vault.yml"
# The province feed tracker's broker account (it subscribes to every gateway's topics).
TRACKER_MQTT_USER = "hazmon-tracker"
TRACKER_MQTT_CREDENTIAL = "vault_mqtt_tracker"
# The bearer token the tracker's JSON API requires (hazmon-tracker --api-token-file).
TRACKER_API_CREDENTIAL = "vault_tracker_api_token"


# The platform's GB/T 28181 registration password, when it has one for the whole province.
SIP_SHARED_CREDENTIAL = "vault_sip_password"
_NOT_IN_A_NAME = re.compile(r"[^a-z0-9]+")


def mqtt_credential(ent: Enterprise) -> str:
    """The vault name of the gateway's MQTT password (its user name is the enterprise code)."""
    return f"vault_mqtt_{ent.slug}"


def sip_credential(slug: str, nvr_name: str, per_device: bool) -> str:
    """The vault name of the password an NVR registers with at the platform (N8): its own,
    vault_sip_<slug>_<nvr name>, when the platform keeps one per device (province.yml
    platform.sip.per_device_passwords), else the province's one. (Strings, not records: the nvr
    role asks through a filter with the host's variables.)"""
    if not per_device:
        return SIP_SHARED_CREDENTIAL
    return f"vault_sip_{slug}_{_NOT_IN_A_NAME.sub('_', nvr_name.lower()).strip('_')}"


def credential_refs(inv: Inventory) -> list[str]:
    """Every secret the inventory refers to, in a stable order."""
    names: list[str] = []
    per_device = inv.province is not None and inv.province.platform.sip.per_device_passwords
    for ent in inv.enterprises:
        names += [n.credential for n in ent.devices.nvrs]
        if per_device:  # an NVR without GB/T 28181 (V2) never registers: no password of its own
            names += [sip_credential(ent.slug, n.name, True) for n in ent.devices.nvrs if n.gb28181]
        if ent.devices.switch is not None:
            names.append(ent.devices.switch.credential)
        names += [s.opc.credential for s in ent.data_sources if s.opc and s.opc.credential]
        if ent.devices.daq_gateway is not None:
            names.append(mqtt_credential(ent))
    if not per_device:
        names.append(SIP_SHARED_CREDENTIAL)  # the platform's GB28181 registration password
    names.append(TRACKER_MQTT_CREDENTIAL)
    names.append(TRACKER_API_CREDENTIAL)
    return list(dict.fromkeys(names))


def _vault(root: Path) -> VaultLib:
    # Imported here, not at the top: Ansible modules that run on the control node import hazmon
    # (e.g. for the names below) inside Ansible's module payload, where `ansible` is the payload's
    # module_utils subset and the controller's vault code cannot be imported.
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = (root / VAULT_PASS_FILE).read_bytes().strip()
    return VaultLib([("default", VaultSecret(password))])


def read_vault(root: Path | str) -> dict[str, str]:
    root = Path(root)
    data = _vault(root).decrypt((root / VAULT_FILE).read_bytes())
    return yaml.safe_load(data) or {}


def ensure_lab_vault(inv: Inventory) -> dict[str, str]:
    """Create or complete the lab's vault so that every referenced secret has a value."""
    root = inv.root
    pass_file = root / VAULT_PASS_FILE
    if not pass_file.exists():
        fd = os.open(pass_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_random.token_urlsafe(32) + "\n")
    vault_path = root / VAULT_FILE
    values = read_vault(root) if vault_path.exists() else {}
    missing = [n for n in credential_refs(inv) if n not in values]
    if missing or not vault_path.exists():
        for name in missing:
            # Letters and digits only: NVR and switch firmware reject many punctuation marks.
            values[name] = _random.token_hex(12)
        vault_path.parent.mkdir(parents=True, exist_ok=True)
        blob = _vault(root).encrypt(yaml.safe_dump(values, sort_keys=True))
        tmp = vault_path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.chmod(tmp, 0o600)
        tmp.replace(vault_path)
    return values
