"""Video rules: V1, V2, V4, V5 and GB/T 28181 device IDs."""

from __future__ import annotations

from ipaddress import ip_network

from hazmon.inventory import notice
from hazmon.inventory.findings import FieldPath, Severity
from hazmon.inventory.loader import Inventory, enterprise_key
from hazmon.inventory.model import Programme

E, B, W = Severity.ERROR, Severity.BLOCKER, Severity.WARNING


def v1_camera_addresses(inv: Inventory) -> None:
    net = ip_network(notice.V1_CAMERA_NETWORK)
    for ent in inv.enterprises:
        for i, cam in enumerate(ent.cameras):
            if cam.address not in net:
                inv.emit("V1", B, enterprise_key(ent.code), ("cameras", i, "address"),
                         f"camera {cam.name} is at {cam.address}, outside {net}: it may clash with the "
                         "platform's management range and must be re-addressed or replaced", ent.code)


def v2_nvr_gb28181(inv: Inventory) -> None:
    for ent in inv.enterprises:
        for i, nvr in enumerate(ent.devices.nvrs):
            if not nvr.gb28181:
                inv.emit("V2", B, enterprise_key(ent.code), ("devices", "nvrs", i, "gb28181"),
                         f"NVR {nvr.name} ({nvr.vendor}) does not support GB/T 28181: add a compliant NVR "
                         "or move its cameras to one", ent.code)


def v4_fireworks_video(inv: Inventory) -> None:
    for ent in inv.enterprises:
        if not ent.has(Programme.FIREWORKS):
            continue
        key = enterprise_key(ent.code)
        kinds = {str(c.location) for c in ent.cameras}
        for kind in notice.FIREWORKS_LOCATIONS:
            if kind not in kinds:
                inv.emit("V4", B, key, ("cameras",),
                         f"no camera covers a {kind.replace('_', ' ')}: every 1.1-class workshop, "
                         "1.1-class finished-goods warehouse and drying-yard entrance must be on video",
                         ent.code)
        for i, place in enumerate(ent.fireworks_places):
            if not any(c.covers == place.name and c.location == place.kind for c in ent.cameras):
                inv.emit("V4", B, key, ("fireworks_places", i),
                         f"{place.name} ({place.kind}) has no camera covering it", ent.code)


def v5_major_hazard_video(inv: Inventory) -> None:
    for ent in inv.enterprises:
        if not ent.has(Programme.MAJOR_HAZARD):
            continue
        key = enterprise_key(ent.code)
        if not any(c.location == "duty_room" for c in ent.cameras):
            inv.emit("V5", B, key, ("cameras",),
                     "no camera shows the duty monitoring centre (duty_room)", ent.code)
        for i, src in enumerate(ent.hazard_sources):
            want = notice.V5_LOCATION_BY_CLASS.get(src.hazard_class)
            if want and not any(c.covers == src.code and c.location == want for c in ent.cameras):
                inv.emit("V5", B, key, ("hazard_sources", i),
                         f"hazard source {src.code} ({src.hazard_class}) has no {want.replace('_', ' ')} "
                         "camera covering it", ent.code)


def _check_id(
    inv: Inventory, key: str, path: FieldPath, value: str | None, prefix: str, types: tuple[str, ...],
    what: str, ent: str | None,
) -> None:
    if value is None:
        return
    if not value.startswith(prefix):
        inv.emit("GB28181", E, key, path,
                 f"{what} ID {value} must start with the administrative code {prefix}", ent)
    if value[10:13] not in types:
        inv.emit("GB28181", E, key, path,
                 f"{what} ID {value} has type code {value[10:13]}; a {what} takes {'/'.join(types)}", ent)


def gb28181_ids(inv: Inventory) -> None:
    seen: dict[str, str] = {}

    def unique(value: str | None, key: str, path: FieldPath, ent: str | None, owner: str) -> None:
        if value is None:
            return
        if value in seen:
            inv.emit("GB28181", E, key, path, f"ID {value} is already used by {seen[value]}", ent)
        else:
            seen[value] = owner

    if inv.province is not None:
        sip = inv.province.platform.sip
        _check_id(inv, "province", ("platform", "sip", "server_id"), sip.server_id, inv.province.code,
                  notice.GB28181_TYPE_SIP_SERVER, "SIP server", None)
        if sip.domain != sip.server_id[:10]:
            inv.emit("GB28181", E, "province", ("platform", "sip", "domain"),
                     f"SIP domain {sip.domain} must be the first 10 digits of the server ID {sip.server_id}")
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        for i, nvr in enumerate(ent.devices.nvrs):
            path = ("devices", "nvrs", i, "device_id")
            _check_id(inv, key, path, nvr.device_id, ent.city, notice.GB28181_TYPE_NVR, "NVR", ent.code)
            unique(nvr.device_id, key, path, ent.code, f"NVR {nvr.name} of {ent.name}")
        for i, cam in enumerate(ent.cameras):
            path = ("cameras", i, "channel_id")
            _check_id(inv, key, path, cam.channel_id, ent.city, notice.GB28181_TYPE_CAMERA, "camera", ent.code)
            unique(cam.channel_id, key, path, ent.code, f"camera {cam.name} of {ent.name}")


def camera_refs(inv: Inventory) -> None:
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        nvrs = {n.name: n for n in ent.devices.nvrs}
        targets = {s.code for s in ent.hazard_sources} | {p.name for p in ent.fireworks_places}
        used: dict[tuple[str, int], str] = {}
        for i, cam in enumerate(ent.cameras):
            nvr = nvrs.get(cam.nvr)
            if nvr is None:
                inv.emit("REF", E, key, ("cameras", i, "nvr"),
                         f"camera {cam.name} is on NVR {cam.nvr!r}, which is not recorded", ent.code)
                continue
            if cam.channel > nvr.channels:
                inv.emit("REF", E, key, ("cameras", i, "channel"),
                         f"camera {cam.name} is on channel {cam.channel}, but NVR {nvr.name} has "
                         f"{nvr.channels} channels", ent.code)
            if (cam.nvr, cam.channel) in used:
                inv.emit("UNIQ", E, key, ("cameras", i, "channel"),
                         f"channel {cam.channel} of NVR {cam.nvr} is already taken by "
                         f"{used[(cam.nvr, cam.channel)]}", ent.code)
            used[(cam.nvr, cam.channel)] = cam.name
            if cam.covers is not None and cam.covers not in targets:
                inv.emit("REF", E, key, ("cameras", i, "covers"),
                         f"camera {cam.name} covers {cam.covers!r}, which is neither a hazard source nor "
                         "a fireworks place of this enterprise", ent.code)


RULES = (v1_camera_addresses, v2_nvr_gb28181, v4_fireworks_video, v5_major_hazard_video, gb28181_ids,
         camera_refs)
