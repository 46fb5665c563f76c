"""What Ansible sees of the model: hosts, groups and variables.

The Ansible inventory plugin (plugins/inventory/hazmon.py) is a thin shell over this module, so
that host naming, grouping and variables are decided and tested in one place.

Hosts: every access gateway, data-acquisition gateway and AI box (N4, managed over SSH at their
management address), every NVR (managed from the control node over ISAPI) and the monitoring
switch (managed from the control node through netmiko). Groups: by city, batch, programme,
device role, lifecycle state and enterprise. Host variables stay lean (no tag tables: collector
configurations are rendered by the roles from the model); the province platform's endpoints are
variables of the group `all`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import hazmon
from hazmon.inventory import notice
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Enterprise, Nvr
from hazmon.inventory.readiness import Readiness
from hazmon.inventory.secrets import TRACKER_API_CREDENTIAL

# Bump when the shape of the output changes: cached results of another format are not used.
FORMAT = 1

ROLE_ACCESS_GATEWAY = "access_gateway"
ROLE_DAQ_GATEWAY = "daq_gateway"
ROLE_AI_BOX = "ai_box"
ROLE_NVR = "nvr"
ROLE_SWITCH = "switch"
ROLES = (ROLE_ACCESS_GATEWAY, ROLE_DAQ_GATEWAY, ROLE_AI_BOX, ROLE_NVR, ROLE_SWITCH)
# The province's own host the rollout configures: the MQTT broker every gateway publishes to.
ROLE_PROVINCE_BROKER = "province_broker"
PROVINCE_BROKER_HOST = "province-broker"

# Host-name suffixes per role (NVRs add their own name).
_SUFFIX = {ROLE_ACCESS_GATEWAY: "agw", ROLE_DAQ_GATEWAY: "daq", ROLE_AI_BOX: "aibox", ROLE_NVR: "nvr",
           ROLE_SWITCH: "sw"}
# Devices managed from the control node, and the interpreter their modules run under there (the
# one running ansible, which has hazmon and netmiko; the system python3 may have neither).
_LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
TEMPLATED_VARS = frozenset({"ansible_python_interpreter"})

_UNSAFE = re.compile(r"[^a-z0-9-]+")


class HostNameClash(ValueError):
    """Two devices would get the same Ansible host name."""


def _clean(text: str) -> str:
    return _UNSAFE.sub("-", text.lower()).strip("-")


def host_name(ent: Enterprise, role: str, nvr: Nvr | None = None) -> str:
    """The one place host names are made: <enterprise slug>-agw / -daq / -aibox / -nvr-<name> / -sw."""
    name = f"{ent.slug}-{_SUFFIX[role]}"
    return f"{name}-{_clean(nvr.name)}" if nvr is not None else name


def group_city(code: str) -> str:
    return f"city_{code}"


def group_batch(batch: int | None) -> str:
    return f"batch_{batch}" if batch is not None else "batch_none"


def group_programme(programme: str) -> str:
    return f"programme_{programme}"


def group_role(role: str) -> str:
    return f"role_{role}"


def group_state(lifecycle: str) -> str:
    return f"state_{lifecycle}"


def group_enterprise(ent: Enterprise) -> str:
    return f"enterprise_{ent.slug}"


@dataclass
class AnsibleInventory:
    """Plain data (JSON-safe) ready to be handed to Ansible, or cached."""

    hosts: dict[str, dict[str, object]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> its hosts
    group_vars: dict[str, dict[str, object]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # host -> enterprise code (for clash messages)

    def add(self, name: str, owner: str, variables: dict[str, object], groups: Iterable[str]) -> None:
        if name in self.hosts:
            raise HostNameClash(
                f"host name {name} of enterprise {owner} is already taken by enterprise {self.owners[name]}: "
                "host names start with the enterprise slug (the last 8 characters of the unified social "
                "credit code), so two enterprises share those 8 characters"
            )
        self.hosts[name] = variables
        self.owners[name] = owner
        for group in groups:
            self.groups.setdefault(group, []).append(name)

    def as_dict(self) -> dict[str, object]:
        return {"hosts": self.hosts, "groups": self.groups, "group_vars": self.group_vars}

    @classmethod
    def from_dict(cls, data: dict) -> AnsibleInventory:
        return cls(hosts=data["hosts"], groups=data["groups"], group_vars=data["group_vars"])

    def to_script_json(self) -> dict[str, object]:
        """The `ansible-inventory --list` shape (also what a static inventory would hold)."""
        out: dict[str, object] = {"_meta": {"hostvars": self.hosts}}
        for group, hosts in self.groups.items():
            out[group] = {"hosts": hosts, **({"vars": self.group_vars[group]} if group in self.group_vars else {})}
        for group, gvars in self.group_vars.items():
            if group not in out:
                out[group] = {"vars": gvars}
        return out


def _platform_vars(inv: Inventory) -> dict[str, object]:
    # The folder itself: control-node modules and renderers load the model from it (lean hostvars).
    out: dict[str, object] = {"hazmon_inventory": inv.name, "hazmon_inventory_root": str(inv.root.resolve())}
    if inv.province is None:
        return out
    out["hazmon_province_code"] = inv.province.code
    # The notice's figures the live checks compare against (one source: inventory/notice.py).
    out["hazmon_notice"] = {
        "n2_line_min_mbps": notice.N2_LINE_MIN_MBPS,
        "n1_uplink_min_mbps": notice.N1_CITY_UPLINK_MIN_MBPS,
    }
    out["hazmon_platform"] = inv.province.platform.model_dump(mode="json")
    # The vault variable holding the tracker JSON API's token (the verify gates ask the tracker).
    out["hazmon_tracker_api_credential"] = TRACKER_API_CREDENTIAL
    return out


def _enterprise_vars(ent: Enterprise, ready: Readiness) -> dict[str, object]:
    return {
        "hazmon_enterprise": ent.code,
        "hazmon_enterprise_name": ent.name,
        "hazmon_slug": ent.slug,
        "hazmon_city": ent.city,
        "hazmon_batch": ent.batch,
        "hazmon_programmes": [str(p) for p in ent.programmes],
        "hazmon_route": ent.route.via,
        "hazmon_lifecycle": str(ready.lifecycle),
        "hazmon_ready": ready.ready,
        # Rule IDs (N2, V2, ...) for conditions, and each blocker's sentence for the preflight's
        # refusal; file and line are in `hazmon inventory validate`.
        "hazmon_blockers": sorted({f.rule for f in ready.blocking}),
        "hazmon_blocking": [f"{f.rule}: {f.message}" for f in ready.blocking],
    }


def build(inv: Inventory, readiness: list[Readiness]) -> AnsibleInventory:
    """Hosts, groups and variables of a validated inventory (use load_valid to get one)."""
    out = AnsibleInventory()
    out.group_vars["all"] = _platform_vars(inv)
    if inv.province is not None:
        # Reached over SSH at the platform's MQTT address; its accounts come from the model
        # (plugins/modules/hazmon_broker_accounts.py), not from host variables.
        mqtt = str(inv.province.platform.mqtt.host)
        out.add(PROVINCE_BROKER_HOST, f"province {inv.province.code}",
                {"hazmon_role": ROLE_PROVINCE_BROKER, "hazmon_address": mqtt, "ansible_host": mqtt},
                [group_role(ROLE_PROVINCE_BROKER)])
    for code, city in sorted(inv.cities.items()):
        out.groups.setdefault(group_city(code), [])
        out.group_vars[group_city(code)] = {"hazmon_city_name": city.name, "hazmon_city_en": city.en or ""}
    for ready in readiness:
        ent = ready.enterprise
        # Enterprise facts are variables of the enterprise's group: every device of the site sees
        # them as its own (hostvars[host].hazmon_enterprise), but Ansible stores and tags them once
        # per enterprise instead of once per device (a fifth of the work at national scale).
        out.group_vars[group_enterprise(ent)] = _enterprise_vars(ent, ready)
        ent_groups = [group_city(ent.city), group_batch(ent.batch), group_state(str(ready.lifecycle)),
                      group_enterprise(ent), *(group_programme(str(p)) for p in ent.programmes)]
        dev = ent.devices
        for role in (ROLE_ACCESS_GATEWAY, ROLE_DAQ_GATEWAY, ROLE_AI_BOX):
            box = getattr(dev, role)
            if box is None:
                continue
            hvars: dict[str, object] = {"hazmon_role": role, "hazmon_address": str(box.address),
                     "ansible_host": str(box.address)}
            if box.serial:
                hvars["hazmon_serial"] = box.serial
            out.add(host_name(ent, role), ent.code, hvars, [*ent_groups, group_role(role)])
        for nvr in dev.nvrs:
            hvars = {**_LOCAL, "hazmon_role": ROLE_NVR, "hazmon_address": str(nvr.address),
                     "hazmon_nvr_name": nvr.name, "hazmon_nvr_vendor": nvr.vendor,
                     "hazmon_nvr_gb28181": nvr.gb28181, "hazmon_nvr_channels": nvr.channels,
                     "hazmon_nvr_device_id": nvr.device_id, "hazmon_nvr_credential": nvr.credential,
                     "hazmon_nvr_isapi_port": nvr.isapi.effective_port}
            out.add(host_name(ent, ROLE_NVR, nvr), ent.code, hvars, [*ent_groups, group_role(ROLE_NVR)])
        if dev.switch is not None:
            sw = dev.switch
            hvars = {**_LOCAL, "hazmon_role": ROLE_SWITCH, "hazmon_address": str(sw.address),
                     "hazmon_switch_name": sw.name, "hazmon_switch_vendor": sw.vendor,
                     "hazmon_switch_device_type": sw.device_type, "hazmon_switch_vlan": sw.vlan,
                     "hazmon_switch_credential": sw.credential}
            out.add(host_name(ent, ROLE_SWITCH), ent.code, hvars, [*ent_groups, group_role(ROLE_SWITCH)])
    return out


# ---------------------------------------------------------------- cache validity


def _walk(root: Path) -> Iterable[os.DirEntry[str]]:
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # .cache, .git, vault passwords: not inventory data
                if entry.is_dir(follow_symlinks=True):
                    stack.append(entry.path)
                elif entry.name.endswith((".yml", ".yaml", ".csv")):
                    yield entry


def fingerprint(root: Path, *extra: Path) -> str:
    """A digest of every inventory file's (path, mtime, size) under `root`, plus `extra` files and
    the hazmon version: a cached result is used only while this is unchanged. Costs one stat per
    file (about 18,000 at national scale), not a parse."""
    rows = []
    for entry in _walk(root):
        st = entry.stat(follow_symlinks=True)
        rows.append(f"{entry.path}\0{st.st_mtime_ns}\0{st.st_size}")
    # The code that derives the output (this package's modules) counts as an input too.
    for path in (*Path(__file__).parent.rglob("*.py"), *extra):
        try:
            st = path.stat()
        except OSError:
            continue
        rows.append(f"{path}\0{st.st_mtime_ns}\0{st.st_size}")
    rows.sort()
    digest = hashlib.sha256(f"{FORMAT}\0{hazmon.__version__}\0{root}".encode())
    digest.update("\n".join(rows).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def to_static_inventory(data: AnsibleInventory) -> dict[str, object]:
    """The same hosts, groups and variables as one static YAML inventory (the bench's baseline)."""
    placed: set[str] = set()
    children: dict[str, object] = {}
    for group, hosts in data.groups.items():
        entry: dict[str, object] = {}
        members: dict[str, object] = {}
        for host in hosts:
            # A host's variables are written once, under the first group that lists it.
            members[host] = None if host in placed else data.hosts[host]
            placed.add(host)
        if members:
            entry["hosts"] = members
        if group in data.group_vars:
            entry["vars"] = data.group_vars[group]
        children[group] = entry
    return {"all": {"vars": data.group_vars.get("all", {}), "children": children}}
