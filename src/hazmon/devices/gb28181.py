"""An NVR's GB/T 28181 platform access (V2) over ISAPI, idempotently, and the wait for its registration.

What the NVR must hold comes from the model: the platform's SIP server (ID, domain, registrar
address and port), the NVR's 20-digit device ID, and each camera's channel ID on that NVR.
`plan` compares it with what the device reports (GET /ISAPI/System/Network/SIP and .../SIPInfo)
and `apply` PUTs only what differs.

The SIP password is write-only on the device (never returned), so it cannot be compared. The proof
that the device holds the right one is the platform's registrar having accepted its digest: the
device is sent the password when anything else changes, when `force_password` is set (after a
rotation), or when the registrar does not list it as registered. A device registered at the
platform is left alone, so a second run changes nothing. Without a registrar status to ask, the
password goes out only with other changes (or when forced). Keeping a digest of the password on
the control node was rejected: AWX execution environments and several operators' machines would
each hold a different, stale copy, while the registrar is the one place that knows.

A channel-ID change is followed by a PUT of the access settings: the device re-registers, and a
platform re-reads a device's catalog on a new registration, so the new IDs reach the platform.

N8: the NVR is reached as the model says (`isapi`: HTTPS by default, its certificate verified).
When the plan sends the password and the NVR is on plain HTTP without the explicit opt-in, the run
stops before anything is PUT (not after the channel IDs), so a refusal leaves the device as it was.
Which password: the NVR's own when the platform keeps one per device (the caller looks it up by
hazmon.inventory.secrets.sip_credential), else the province's.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hazmon.devices.isapi import Isapi, element, local, set_field, sub, text
from hazmon.devices.site import DeviceError, SiteInventory
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Enterprise, Nvr

SIP_PATH = "/ISAPI/System/Network/SIP"
SIPINFO_PATH = "/ISAPI/System/Network/SIP/1/SIPInfo"
PASSWORD_FIELD = "password"
# Shown in diffs instead of the password, which never leaves the vault.
PASSWORD_UNPROVEN = "(write-only; not proven by a registration)"
PASSWORD_PROVEN = "(write-only; proven: the platform accepted the device's registration)"
PASSWORD_UNKNOWN = "(write-only; no registrar status to prove it)"
PASSWORD_SENT = "(sent from the vault)"
SECRET_WHAT = "the platform's SIP password (<password> in PUT " + SIP_PATH + ")"


@dataclass(frozen=True)
class Access:
    """The GB/T 28181 platform-access fields hazmon manages (ISAPI names in ISAPI_NAMES)."""

    enabled: bool
    registrar: str
    registrar_port: int
    server_id: str
    server_domain: str
    auth_id: str
    expires: int = 3600
    heartbeat_time: int = 60
    heartbeat_count: int = 3
    local_port: int = 5060


ISAPI_NAMES = {"enabled": "enabled", "registrar": "registrar", "registrar_port": "registrarPort",
               "server_id": "serverId", "server_domain": "serverDomain", "auth_id": "authID",
               "expires": "expires", "heartbeat_time": "heartbeatTime", "heartbeat_count": "heartbeatCount",
               "local_port": "localPort"}
_INTS = {"registrar_port", "expires", "heartbeat_time", "heartbeat_count", "local_port"}


def _isapi_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_access(root: ET.Element) -> dict[str, Any]:
    """The managed fields the device reports (a field it does not report is absent)."""
    out: dict[str, Any] = {}
    for attr, name in ISAPI_NAMES.items():
        value = text(root, name)
        if value is None:
            continue
        if attr == "enabled":
            out[attr] = value.lower() == "true"
        elif attr in _INTS:
            out[attr] = int(value) if value.isdigit() else value
        else:
            out[attr] = value
    return out


def parse_channel_ids(root: ET.Element) -> dict[int, str]:
    """Channel number -> GB/T 28181 ID from a SIPInfo document (channels without an ID are left out)."""
    ids: dict[int, str] = {}
    for el in root.iter():
        children = {local(c.tag): (c.text or "").strip() for c in el}
        number = children.get("id", "")
        value = next((v for k, v in children.items() if k != "id" and k.endswith("ID")), "")
        if number.isdigit() and value:
            ids[int(number)] = value
    return ids


def channel_ids_body(ids: Mapping[int, str]) -> ET.Element:
    root = element("SIPInfo")
    lst = sub(root, "videoInputChannelList")
    for number, value in sorted(ids.items()):
        ch = sub(lst, "VideoInputChannel")
        sub(ch, "id", number)
        sub(ch, "videoInputID", value)
    return root


def access_body(current: ET.Element, access: Access, password: str | None) -> ET.Element:
    """A copy of the device's own SIP document with hazmon's fields set in it, and the password when
    given (else no password element at all: an empty one would be a new, empty password)."""
    current = copy.deepcopy(current)
    target = next((el for el in current.iter() if local(el.tag) == "GB28181"), current)
    for attr, name in ISAPI_NAMES.items():
        value = getattr(access, attr)
        if attr == "local_port":  # sits beside <GB28181> on Hikvision firmware, inside it on some
            set_field(next((el for el in current.iter() if local(el.tag) == "SIPServer"), target), name,
                      _isapi_value(value))
        else:
            set_field(target, name, _isapi_value(value))
    if password is not None:
        set_field(target, PASSWORD_FIELD, password)
    else:
        for parent in list(current.iter()):
            for child in [c for c in parent if local(c.tag) == PASSWORD_FIELD]:
                parent.remove(child)
    return current


# ---------------------------------------------------------------- how the NVR is reached


def isapi_url(nvr: Nvr, address: str | None = None, scheme: str | None = None) -> str:
    """The NVR's ISAPI base URL from the model (`isapi`: scheme, port); `address` (host, or host:port)
    and `scheme` override it."""
    host = address or str(nvr.address)
    if ":" not in host and nvr.isapi.port is not None:
        host = f"{host}:{nvr.isapi.port}"
    return f"{scheme or nvr.isapi.scheme}://{host}"


def nvr_client(ent: Enterprise, nvr: Nvr, username: str, password: str, *, address: str | None = None,
               scheme: str | None = None, ca_file: Path | str | None = None,
               insecure_secrets_over_http: bool = False, timeout: float = 10.0) -> Isapi:
    """The ISAPI client of one NVR of the model, named in its messages as "NVR <name> of <code>"."""
    return Isapi(isapi_url(nvr, address, scheme), username, password, timeout=timeout, ca_file=ca_file or None,
                 insecure_secrets_over_http=insecure_secrets_over_http, device=f"NVR {nvr.name} of {ent.code}")


# ---------------------------------------------------------------- what the model wants


@dataclass(frozen=True)
class Target:
    """Everything one NVR must hold, derived from the model (options may override platform values)."""

    enterprise: str
    nvr: str
    address: str
    access: Access
    channel_ids: dict[int, str]
    status_url: str | None

    @property
    def device_id(self) -> str:
        return self.access.auth_id


def target(inv: Inventory | SiteInventory, ent: Enterprise, nvr: Nvr,
           overrides: Mapping[str, Any] | None = None) -> Target:
    """The NVR's GB/T 28181 settings from the model; V2 refuses an NVR without GB/T 28181."""
    if not nvr.gb28181:
        raise DeviceError(f"V2: NVR {nvr.name} of {ent.code} ({nvr.vendor} {nvr.model or ''}) does not support "
                          "GB/T 28181 stream access (inventory gb28181: false): add a compliant NVR or move "
                          "its cameras to one; it cannot be connected to the platform")
    over = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
    if inv.province is None:
        raise DeviceError(f"inventory {inv.root} has no province.yml: the platform's SIP server is unknown")
    sip = inv.province.platform.sip
    device_id = over.pop("device_id", None) or nvr.device_id
    if not device_id:
        raise DeviceError(f"GB28181: NVR {nvr.name} of {ent.code} has no device_id in the inventory (its "
                          "20-digit GB/T 28181 ID, type 118): record it before rollout")
    fields: dict[str, Any] = {
        "enabled": True, "registrar": str(sip.host), "registrar_port": sip.port, "server_id": sip.server_id,
        "server_domain": sip.domain, "auth_id": device_id,
    }
    for attr in ("registrar", "registrar_port", "server_id", "server_domain", "expires", "heartbeat_time",
                 "heartbeat_count", "local_port"):
        if attr in over:
            fields[attr] = over[attr]
    channels = {c.channel: c.channel_id for c in ent.cameras if c.nvr == nvr.name and c.channel_id}
    status_url = over.get("status_url") or getattr(sip, "status_url", None)
    return Target(enterprise=ent.code, nvr=nvr.name, address=str(over.get("address") or nvr.address),
                  access=Access(**fields), channel_ids=channels, status_url=str(status_url) if status_url else None)


# ---------------------------------------------------------------- plan and apply


@dataclass
class Plan:
    before: dict[str, Any]
    after: dict[str, Any]
    access_changes: dict[str, Any] = field(default_factory=dict)
    channel_changes: dict[int, str] = field(default_factory=dict)
    put_access: bool = False  # PUT the access settings (always with the password when enabling)
    send_password: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.put_access or bool(self.channel_changes)

    def diff(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "before_header": "NVR (device)",
                "after_header": "NVR (inventory)"}


def _view(access: Mapping[str, Any], channels: Mapping[int, str], password: str) -> dict[str, Any]:
    return {"gb28181": {**{k: access.get(k) for k in ISAPI_NAMES}, PASSWORD_FIELD: password},
            "channel_ids": {str(k): v for k, v in sorted(channels.items())}}


def plan_present(current: Mapping[str, Any], current_ids: Mapping[int, str], want: Target,
                 password_proven: bool | None, force_password: bool = False) -> Plan:
    """What to change so that the device holds `want`; password_proven None: nobody can tell."""
    desired = asdict(want.access)
    access_changes = {k: v for k, v in desired.items() if current.get(k) != v}
    channel_changes = {n: i for n, i in want.channel_ids.items() if current_ids.get(n) != i}
    reasons = [f"{k}: {current.get(k)!r} -> {v!r}" for k, v in access_changes.items()]
    reasons += [f"channel {n}: {current_ids.get(n) or '(none)'} -> {i}" for n, i in channel_changes.items()]
    if force_password:
        reasons.append("password: sent on request (force_password)")
    elif password_proven is False and not access_changes and not channel_changes:
        reasons.append("password: the platform does not list the device as registered, so the device may "
                       "hold a wrong one")
    send = force_password or bool(access_changes) or bool(channel_changes) or password_proven is False
    shown = {True: PASSWORD_PROVEN, False: PASSWORD_UNPROVEN, None: PASSWORD_UNKNOWN}[password_proven]
    before = _view(current, current_ids, shown)
    after = _view(desired, {**current_ids, **want.channel_ids}, PASSWORD_SENT if send else shown)
    return Plan(before=before, after=after, access_changes=access_changes, channel_changes=channel_changes,
                put_access=send, send_password=send, reasons=reasons)


def plan_absent(current: Mapping[str, Any], current_ids: Mapping[int, str]) -> Plan:
    """Decommission: platform access disabled; settings and channel IDs are left as they are."""
    before = _view(current, current_ids, PASSWORD_UNKNOWN)
    after = _view({**current, "enabled": False}, current_ids, PASSWORD_UNKNOWN)
    enabled = current.get("enabled") is True
    return Plan(before=before, after=after, access_changes={"enabled": False} if enabled else {},
                put_access=enabled, reasons=["enabled: True -> False"] if enabled else [])


@dataclass
class DeviceView:
    sip_doc: ET.Element
    access: dict[str, Any]
    channel_ids: dict[int, str]


def read_device(client: Isapi) -> DeviceView:
    doc = client.get(SIP_PATH)
    return DeviceView(sip_doc=doc, access=parse_access(doc), channel_ids=parse_channel_ids(client.get(SIPINFO_PATH)))


def apply(client: Isapi, view: DeviceView, plan: Plan, want: Target | None, password: str | None) -> None:
    """Channel IDs first, then the access settings: their PUT makes the device re-register, and the
    platform reads the catalog (with the new IDs) on that registration. A password that may not go
    over this transport (N8) stops it before the first PUT."""
    if plan.send_password and want is not None:
        client.check_secret_transport(SECRET_WHAT)
    if plan.channel_changes:
        client.put(SIPINFO_PATH, channel_ids_body(plan.channel_changes))
    if not plan.put_access:
        return
    if want is None:  # absent: only switch access off
        set_field(next((el for el in view.sip_doc.iter() if local(el.tag) == "GB28181"), view.sip_doc),
                  "enabled", "false")
        client.put(SIP_PATH, view.sip_doc)
        return
    if plan.send_password and not password:
        raise DeviceError("GB28181: the platform's SIP password is needed to configure access (sip_password)")
    client.put(SIP_PATH, access_body(view.sip_doc, want.access, password if plan.send_password else None))


# ---------------------------------------------------------------- the platform's registrar


def read_registrar(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The registrar's status document (registrations.json: devices by ID, rejections)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DeviceError(f"cannot read the registrar's status at {url}: {getattr(exc, 'reason', exc)}") from None


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "never"


def device_record(status: Mapping[str, Any], device_id: str) -> dict[str, Any] | None:
    record = (status.get("devices") or {}).get(device_id)
    return dict(record) if isinstance(record, dict) else None


def rejections(status: Mapping[str, Any], device_id: str) -> list[dict[str, Any]]:
    return [r for r in status.get("rejections") or [] if r.get("device_id") == device_id]


def is_registered(status: Mapping[str, Any], device_id: str) -> bool:
    record = device_record(status, device_id)
    return bool(record and record.get("registered"))


def registration_problem(status: Mapping[str, Any], device_id: str, channel_ids: Mapping[int, str],
                         since: float | None = None, seen_at: float | None = None) -> str | None:
    """None when the device is registered (after `since`), online and reports every channel ID;
    otherwise what the registrar shows, in words. Rejections count from `seen_at` (the registrar's
    clock, its `updated_at` when it was read before the change): older ones are history."""
    refused = [r for r in rejections(status, device_id) if seen_at is None or (r.get("time") or 0) > seen_at]
    problem = _registration_state(device_record(status, device_id), channel_ids, since)
    if problem is None or not refused:
        return problem
    # A refusal is the likeliest cause of anything else the registrar shows: say it first.
    last = refused[-1]
    return (f"the registrar refused it ({len(refused)} time(s), last at {_when(last.get('time'))} from "
            f"{last.get('address')}): {last.get('status')} {last.get('reason')}; {problem}")


def _registration_state(record: Mapping[str, Any] | None, channel_ids: Mapping[int, str],
                        since: float | None) -> str | None:
    if record is None:
        return ("the registrar has never heard from it: check the NVR's route to the registrar, its "
                "server ID, domain and device ID")
    if not record.get("registered"):
        if record.get("unregistered_at"):
            return (f"it is not registered: it unregistered at {_when(record.get('unregistered_at'))} (last "
                    f"registration {_when(record.get('registered_at'))}) and has not registered since")
        return f"it is not registered: its registration of {_when(record.get('registered_at'))} expired"
    if since is not None and (record.get("registered_at") or 0) <= since:
        return ("the registrar still shows its registration from before the change "
                f"({_when(record.get('registered_at'))}): the NVR has not registered again")
    if not record.get("online"):
        return (f"it registered at {_when(record.get('registered_at'))} but is offline: last keepalive "
                f"{_when(record.get('last_keepalive'))}")
    seen = {c.get("device_id") for c in record.get("channels") or []}
    missing = sorted(set(channel_ids.values()) - seen)
    if missing:
        return (f"it is registered and online, but its catalog lacks channel ID(s) {', '.join(missing)} "
                f"(the platform saw {sorted(i for i in seen if i) or 'no channel'})")
    return None


@dataclass
class WaitResult:
    record: dict[str, Any]
    waited: float


def wait_registered(url: str, want: Target, since: float | None, seen_at: float | None, timeout: float,
                    poll: float = 0.5, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> WaitResult:
    """Poll the registrar until the NVR is registered, online and reports its channels (V2)."""
    start = clock()
    while True:
        try:
            status = read_registrar(url)
            problem = registration_problem(status, want.device_id, want.channel_ids, since, seen_at)
        except DeviceError as exc:
            status, problem = {}, str(exc)
        if problem is None:
            return WaitResult(record=device_record(status, want.device_id) or {}, waited=round(clock() - start, 2))
        if clock() - start >= timeout:
            raise DeviceError(
                f"V2: NVR {want.nvr} of {want.enterprise} (GB/T 28181 device {want.device_id}) is not online at the "
                f"platform's registrar {want.access.registrar}:{want.access.registrar_port} after {timeout:g} s: "
                f"{problem}")
        sleep(poll)


# ---------------------------------------------------------------- the whole job (what the module runs)


@dataclass
class Outcome:
    changed: bool
    plan: Plan
    registration: dict[str, Any] | None = None
    waited: float | None = None
    error: str | None = None  # set when the device was changed but the registration did not follow


def converge(client: Isapi, want: Target, sip_password: str | None, *, check: bool = False,
             force_password: bool = False, wait_timeout: float = 120.0, poll: float = 0.5) -> Outcome:
    """Read the device and the registrar, change what differs, then wait for the registration (V2)."""
    view = read_device(client)
    status = read_registrar(want.status_url) if want.status_url else None
    proven = None if status is None else is_registered(status, want.device_id)
    plan = plan_present(view.access, view.channel_ids, want, proven, force_password)
    if plan.send_password:  # N8, in check mode too: the real run would stop here
        client.check_secret_transport(SECRET_WHAT)
    out = Outcome(changed=plan.changed, plan=plan)
    if status is not None:
        out.registration = device_record(status, want.device_id) or {}
    if check:
        return out
    if plan.changed:
        apply(client, view, plan, want, sip_password)
    if not want.status_url or wait_timeout <= 0:
        if want.status_url:
            out.registration = device_record(read_registrar(want.status_url), want.device_id) or {}
        return out
    before = (status or {}).get("devices", {}).get(want.device_id) or {}
    since = before.get("registered_at") if plan.put_access else None
    try:
        waited = wait_registered(want.status_url, want, since, (status or {}).get("updated_at"), wait_timeout,
                                 poll=poll)
    except DeviceError as exc:
        out.error = str(exc)
        return out
    out.registration, out.waited = waited.record, waited.waited
    return out


def disable(client: Isapi, *, check: bool = False) -> Plan:
    """Decommission: platform access off (nothing else changes on the device)."""
    view = read_device(client)
    plan = plan_absent(view.access, view.channel_ids)
    if plan.changed and not check:
        apply(client, view, plan, None, None)
    return plan
