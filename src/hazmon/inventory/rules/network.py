"""Network rules: N1-N6 and the parent-company route of S3."""

from __future__ import annotations

from dataclasses import dataclass

from hazmon.inventory import notice
from hazmon.inventory.findings import Severity
from hazmon.inventory.loader import Inventory, city_key, enterprise_key
from hazmon.inventory.model import Programme, Switch, SwitchPort
from hazmon.inventory.reference import reference

E, B, W = Severity.ERROR, Severity.BLOCKER, Severity.WARNING


def n1_city_uplink(inv: Inventory) -> None:
    low = notice.N1_CITY_UPLINK_MIN_MBPS
    for code, city in inv.cities.items():
        key = city_key(code)
        if city.uplink.contracted_mbps < low:
            inv.emit("N1", E, key, ("uplink", "contracted_mbps"),
                     f"{city.name}'s e-government uplink is contracted at {city.uplink.contracted_mbps:g} "
                     f"Mbps; the notice requires at least {low:g} Mbps")
        if city.uplink.measured_mbps is None:
            inv.emit("N1", W, key, ("uplink",),
                     f"{city.name}'s e-government uplink has never been measured")
        elif city.uplink.measured_mbps < low:
            inv.emit("N1", B, key, ("uplink", "measured_mbps"),
                     f"{city.name}'s uplink measured {city.uplink.measured_mbps:g} Mbps, below the "
                     f"{low:g} Mbps minimum: its enterprises cannot be ready until it is fixed")


def n2_dedicated_line(inv: Inventory) -> None:
    low = notice.N2_LINE_MIN_MBPS
    for ent in inv.enterprises:
        key, line = enterprise_key(ent.code), ent.line
        if line.contracted_mbps < low:
            inv.emit("N2", E, key, ("line", "contracted_mbps"),
                     f"the dedicated line is contracted at {line.contracted_mbps:g} Mbps; "
                     f"the notice requires at least {low:g} Mbps", ent.code)
        if line.measured_mbps is None:
            inv.emit("N2", W, key, ("line",), "the dedicated line has never been measured", ent.code)
        elif line.measured_mbps < low:
            inv.emit("N2", B, key, ("line", "measured_mbps"),
                     f"the dedicated line measured {line.measured_mbps:g} Mbps, below the {low:g} Mbps "
                     "minimum: ask the carrier to restore it before rollout", ent.code)


def n3_topology(inv: Inventory) -> None:
    for ent in inv.enterprises:
        links = ent.site.control_room_links
        if links == 0:
            inv.emit("N3", B, enterprise_key(ent.code), ("site", "control_room_links"),
                     "there is no link between the machine room and the control room: "
                     "the site is not ready", ent.code)
        elif links not in notice.N3_TOPOLOGY_BY_LINKS:
            inv.emit("N3", E, enterprise_key(ent.code), ("site", "control_room_links"),
                     f"{links} machine-room/control-room links fit neither topology: the notice "
                     "knows 1 link (topology 2) or 3 links (topology 1)", ent.code)


def n4_supplied_devices(inv: Inventory) -> None:
    """N4: access gateway, data-acquisition gateway and AI box; fireworks get no DAQ gateway."""
    for ent in inv.enterprises:
        key, dev = enterprise_key(ent.code), ent.devices
        needed = ["access_gateway", "ai_box"] + ([] if ent.fireworks_only else ["daq_gateway"])
        for name in needed:
            if getattr(dev, name) is None:
                inv.emit("N4", B, key, ("devices",),
                         f"no {name.replace('_', ' ')} is recorded for this site", ent.code)
        if ent.fireworks_only and dev.daq_gateway is not None:
            inv.emit("N4", W, key, ("devices", "daq_gateway"),
                     "fireworks producers get an access gateway and an AI box only", ent.code)


def n5_cabinet(inv: Inventory) -> None:
    need = notice.N5_CABINET_MIN_UNITS
    for ent in inv.enterprises:
        if ent.site.cabinet_units_free < need:
            inv.emit("N5", B, enterprise_key(ent.code), ("site", "cabinet_units_free"),
                     f"the cabinet has {ent.site.cabinet_units_free}U free; the notice asks for {need}U "
                     "for the supplied devices", ent.code)


@dataclass(frozen=True)
class N6Ports:
    """A monitoring switch's ports as N6 sees them, each list in inventory order."""

    ai_box: list[SwitchPort]  # marked `connected: ai_box`
    nvr: list[SwitchPort]  # marked `connected: nvr` or `nvr:<name>`
    free: list[SwitchPort]  # nothing connected (`connected` absent)


def n6_ports(sw: Switch) -> N6Ports:
    """What N6 means by a port for the AI box, one for the NVR, and a free port (the switch_ports
    role reserves from the same lists, so the rule and the rollout cannot disagree)."""
    return N6Ports(ai_box=[p for p in sw.ports if p.connected == "ai_box"],
                   nvr=[p for p in sw.ports if (p.connected or "").startswith("nvr")],
                   free=[p for p in sw.ports if p.connected is None])


def n6_switch_ports(inv: Inventory) -> None:
    """N6: two free monitoring-switch ports, one for the AI box and one for the NVR."""
    for ent in inv.enterprises:
        key, sw = enterprise_key(ent.code), ent.devices.switch
        if sw is None:
            inv.emit("N6", B, key, ("devices",), "no monitoring switch is recorded", ent.code)
            continue
        ports = n6_ports(sw)
        ai, nvr, free = ports.ai_box, ports.nvr, ports.free
        short = (0 if ai else 1) + (0 if nvr else 1)
        if len(free) < short:
            inv.emit("N6", B, key, ("devices", "switch", "ports"),
                     f"switch {sw.name} has {len(free)} free port(s); one is needed for the AI box and one "
                     "for the NVR", ent.code)
        for i, port in enumerate(sw.ports):
            target = port.connected or ""
            if target.startswith("nvr:") and target[4:] not in {n.name for n in ent.devices.nvrs}:
                inv.emit("REF", E, key, ("devices", "switch", "ports", i, "connected"),
                         f"port {port.name} names NVR {target[4:]!r}, which is not recorded", ent.code)


def s3_parent_route(inv: Inventory) -> None:
    parents = reference().parent_companies
    for ent in inv.enterprises:
        key, route = enterprise_key(ent.code), ent.route
        if route.via == "parent_company" and route.parent_company not in parents:
            inv.emit("S3", E, key, ("route", "parent_company"),
                     f"{route.parent_company!r} is not one of the parent companies the notice names "
                     f"({', '.join(parents)})", ent.code)
        if route.via == "city" and route.parent_company:
            inv.emit("S3", E, key, ("route", "via"),
                     "a parent company is named but the route is via the city", ent.code)
        if route.via == "parent_company" and ent.has(Programme.FIREWORKS):
            inv.emit("S3", W, key, ("route",), "fireworks producers normally connect via the city", ent.code)


RULES = (n1_city_uplink, n2_dedicated_line, n3_topology, n4_supplied_devices, n5_cabinet,
         n6_switch_ports, s3_parent_route)
