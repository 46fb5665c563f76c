"""The AI box's video analytics, per camera, derived from where the camera looks (V4, V5, S4).

The notice asks the province's video AI gateway (视频智能分析网关, N4) for "video intelligent
analysis and warning" (D7) on the fireworks places of V4 (1.1-class workshops, 1.1-class
finished-goods warehouses, drying-yard entrances) and on the major-hazard areas of V5 and S4
(duty monitoring centre, tank farms, warehouses, production units). It does not name algorithms:
the table below is hazmon's choice, the common set of such gateways, and the ONE place that says
which analysis runs on which kind of place (LOCATION_ANALYTICS) and with which defaults (ALGORITHMS).

A head-count limit is the place's approved staffing (定员, from its safety assessment); the
inventory does not record it yet, so the default below applies unless the role's
`ai_box_analytics_overrides` sets it per camera.

    python -m hazmon.devices.analytics --inventory DIR --enterprise CODE [--overrides JSON]

prints the document the ai_box role installs (/etc/hazmon-aibox/analytics.json), byte for byte:
the verify side compares the box's file with it. No vendor analytics engine exists in the lab; the
file is the contract a province-supplied engine reads.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hazmon.devices.site import DeviceError, load_site
from hazmon.inventory.ansible import ROLE_AI_BOX, host_name
from hazmon.inventory.model import Camera, Enterprise, LocationKind, Nvr

SCHEMA = "hazmon-aibox-analytics/1"
MANAGED = "rendered by hazmon (ai_box role) from the inventory: edit the inventory, not this file"


@dataclass(frozen=True)
class Algorithm:
    label: str  # as the gateways' vendors name it
    what: str
    params: dict[str, Any] = field(default_factory=dict)


ALGORITHMS: dict[str, Algorithm] = {
    "head_count_limit": Algorithm("超员检测", "more people in view than the place's approved staffing",
                                  {"max_persons": 2, "hold_s": 10}),
    "intrusion": Algorithm("区域入侵", "a person inside the watched area",
                           {"min_stay_s": 3, "armed": "always"}),
    "entrance_count": Algorithm("出入口计数", "people crossing the entrance line, and how many are inside",
                                {"max_inside": 2, "direction": "both"}),
    "smoke_fire": Algorithm("烟火识别", "smoke or open flame", {"sensitivity": 80, "hold_s": 3}),
    "duty_absence": Algorithm("离岗检测", "nobody at the duty desk", {"min_persons": 1, "absent_s": 300}),
    "no_helmet": Algorithm("未戴安全帽", "a person without a safety helmet", {"hold_s": 5}),
}

# Where a camera looks -> (the notice rule that asks for video there, the analyses to run).
LOCATION_ANALYTICS: dict[LocationKind, tuple[str, tuple[str, ...]]] = {
    LocationKind.FW_WORKSHOP_11: ("V4", ("head_count_limit", "smoke_fire")),
    LocationKind.FW_WAREHOUSE_11: ("V4", ("intrusion", "head_count_limit", "smoke_fire")),
    LocationKind.FW_DRYING_YARD: ("V4", ("entrance_count", "smoke_fire")),
    LocationKind.TANK_FARM: ("V5", ("intrusion", "smoke_fire")),
    LocationKind.WAREHOUSE: ("V5", ("intrusion", "smoke_fire")),
    LocationKind.PRODUCTION_UNIT: ("V5", ("smoke_fire", "no_helmet")),
    LocationKind.DUTY_ROOM: ("V5", ("duty_absence",)),
    LocationKind.OTHER: ("S4", ()),  # on video, streamed to the platform, no analysis
}

# Stream addresses by NVR vendor (channel N, main stream); other vendors: GB/T 28181 only.
RTSP_PATHS = {
    "hikvision": "/Streaming/Channels/{channel}01",
    "dahua": "/cam/realmonitor?channel={channel}&subtype=0",
}


def _stream(nvr: Nvr, channel: int) -> str | None:
    path = RTSP_PATHS.get(nvr.vendor.lower())
    return f"rtsp://{nvr.address}:554{path.format(channel=channel)}" if path else None


def _analyses(cam: Camera, overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    _, names = LOCATION_ANALYTICS[cam.location]
    extra = dict(overrides.get(cam.name) or {})
    unknown = sorted(set(extra) - set(names))
    if unknown:
        raise DeviceError(f"ai_box_analytics_overrides[{cam.name}]: {unknown} do not run at a "
                          f"{cam.location} camera (it runs {list(names)})")
    out = []
    for name in names:
        algo = ALGORITHMS[name]
        params = copy.deepcopy(algo.params)
        given = dict(extra.get(name) or {})
        bad = sorted(set(given) - set(params))
        if bad:
            raise DeviceError(f"ai_box_analytics_overrides[{cam.name}][{name}]: unknown parameter(s) {bad}; "
                              f"{name} takes {sorted(params)}")
        params.update(given)
        out.append({"algorithm": name, "label": algo.label, "params": params})
    return out


def render(ent: Enterprise, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The analytics document of one enterprise's AI box (cameras in inventory order)."""
    overrides = overrides or {}
    box = ent.devices.ai_box
    if box is None:
        raise DeviceError(f"N4: enterprise {ent.code} records no AI box (devices.ai_box)")
    names = {c.name for c in ent.cameras}
    stray = sorted(set(overrides) - names)
    if stray:
        raise DeviceError(f"ai_box_analytics_overrides: no camera {stray} at {ent.code} (it has {sorted(names)})")
    nvrs = {n.name: n for n in ent.devices.nvrs}
    cameras = []
    for cam in ent.cameras:
        nvr = nvrs[cam.nvr]  # camera_refs (REF) guarantees it in a valid inventory
        rule, _ = LOCATION_ANALYTICS[cam.location]
        cameras.append({
            "name": cam.name, "location": str(cam.location), "covers": cam.covers, "rule": rule,
            "nvr": {"name": nvr.name, "vendor": nvr.vendor, "address": str(nvr.address), "device_id": nvr.device_id},
            "channel": cam.channel,
            # The GB/T 28181 channel ID the NVR announces (set by the nvr role), and the NVR's own stream.
            "channel_id": cam.channel_id,
            "rtsp": _stream(nvr, cam.channel),
            "analytics": _analyses(cam, overrides),
        })
    return {
        "schema": SCHEMA,
        "managed": MANAGED,
        "enterprise": {"code": ent.code, "name": ent.name, "programmes": [str(p) for p in ent.programmes]},
        "ai_box": {"host": host_name(ent, ROLE_AI_BOX), "address": str(box.address), "serial": box.serial},
        "cameras": cameras,
    }


def dumps(doc: Mapping[str, Any]) -> str:
    """The file's exact text (stable: the role's copy and the verify side compare it byte for byte)."""
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def summary(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    return {c["name"]: [a["algorithm"] for a in c["analytics"]] for c in doc["cameras"]}


def check(content: str, ent: Enterprise, overrides: Mapping[str, Any] | None = None) -> list[str]:
    """What differs between an installed file and what the model gives (empty: it is in place)."""
    try:
        found = json.loads(content)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    want = render(ent, overrides)
    if found.get("schema") != SCHEMA:
        return [f"schema {found.get('schema')!r}, expected {SCHEMA!r}"]
    problems = [f"{key}: differs" for key in ("enterprise", "ai_box") if found.get(key) != want[key]]
    have = {c.get("name"): c for c in found.get("cameras") or []}
    for cam in want["cameras"]:
        if cam["name"] not in have:
            problems.append(f"camera {cam['name']}: missing")
        elif have[cam["name"]] != cam:
            problems.append(f"camera {cam['name']}: differs")
    problems += [f"camera {n}: not in the inventory" for n in have if n not in {c["name"] for c in want["cameras"]}]
    if not problems and content != dumps(want):
        problems.append("same content, different formatting")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hazmon.devices.analytics", description=__doc__.split("\n")[0])
    p.add_argument("--inventory", required=True)
    p.add_argument("--enterprise", required=True, help="code, slug or name")
    p.add_argument("--overrides", default="{}", help="JSON: {camera: {algorithm: {param: value}}}")
    p.add_argument("--check", metavar="FILE", help="compare an installed file instead of printing")
    args = p.parse_args(argv)
    try:
        _, ent = load_site(args.inventory, args.enterprise)
        overrides = json.loads(args.overrides)
        if args.check:
            with open(args.check, encoding="utf-8") as fh:
                problems = check(fh.read(), ent, overrides)
            for line in problems:
                print(line)
            return 1 if problems else 0
        sys.stdout.write(dumps(render(ent, overrides)))
    except (DeviceError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
