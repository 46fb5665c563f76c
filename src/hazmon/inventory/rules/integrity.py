"""Integrity: known cities and province, unique names and addresses within a site."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address

from hazmon.inventory.findings import FieldPath, Severity
from hazmon.inventory.loader import Inventory, city_key, enterprise_key
from hazmon.inventory.model import Enterprise
from hazmon.inventory.reference import reference

E, W = Severity.ERROR, Severity.WARNING


def known_places(inv: Inventory) -> None:
    ref = reference()
    if inv.province is not None and inv.province.code != ref.province_code:
        inv.emit("REF", E, "province", ("code",),
                 f"province code {inv.province.code} is not Sichuan's ({ref.province_code})")
    for code, city in inv.cities.items():
        known = ref.city(code)
        if known is None:
            inv.emit("REF", E, city_key(code), ("code",),
                     f"{code} is not a GB/T 2260 code of a Sichuan city or prefecture")
        elif known.name != city.name:
            inv.emit("REF", E, city_key(code), ("name",), f"city {code} is {known.name}, not {city.name}")
    for ent in inv.enterprises:
        if ent.city not in inv.cities:
            inv.emit("REF", E, enterprise_key(ent.code), ("city",),
                     f"city {ent.city} has no valid city.yml in this inventory", ent.code)


def site_addresses(ent: Enterprise) -> Iterator[tuple[FieldPath, IPv4Address, str]]:
    """Every address of one site, with its field path and a name for messages."""
    dev = ent.devices
    for name in ("access_gateway", "daq_gateway", "ai_box"):
        box = getattr(dev, name)
        if box is not None:
            yield ("devices", name, "address"), box.address, name.replace("_", " ")
    for i, nvr in enumerate(dev.nvrs):
        yield ("devices", "nvrs", i, "address"), nvr.address, f"NVR {nvr.name}"
    if dev.switch is not None:
        yield ("devices", "switch", "address"), dev.switch.address, f"switch {dev.switch.name}"
    for i, other in enumerate(dev.other):
        if other.address is not None:
            yield ("devices", "other", i, "address"), other.address, other.name
    for i, cam in enumerate(ent.cameras):
        yield ("cameras", i, "address"), cam.address, f"camera {cam.name}"
    for i, src in enumerate(ent.data_sources):
        if src.host is not None:
            yield ("data_sources", i, "host"), src.host, f"data source {src.name}"


def _addresses(ent: Enterprise) -> list[int]:
    """The addresses site_addresses yields, as integers, without paths and names (a fast check)."""
    dev = ent.devices
    out = [box.address for box in (dev.access_gateway, dev.daq_gateway, dev.ai_box) if box is not None]
    out += [nvr.address for nvr in dev.nvrs]
    if dev.switch is not None:
        out.append(dev.switch.address)
    out += [other.address for other in dev.other if other.address is not None]
    out += [cam.address for cam in ent.cameras]
    out += [src.host for src in ent.data_sources if src.host is not None]
    return list(map(int, out))


def unique_within_site(inv: Inventory) -> None:
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        seen: dict[IPv4Address, str] = {}
        addresses = _addresses(ent)
        if len(set(addresses)) == len(addresses):
            addresses.clear()  # all distinct (the common case): nothing to report below
        for path, addr, what in site_addresses(ent) if addresses else ():
            if addr in seen:
                inv.emit("ADDR", E, key, path, f"{what} has address {addr}, already used by {seen[addr]}",
                         ent.code)
            else:
                seen[addr] = what
        for kind, items in (("NVR", ent.devices.nvrs), ("camera", ent.cameras),
                            ("data source", ent.data_sources), ("fireworks place", ent.fireworks_places)):
            names: set[str] = set()
            field = {"NVR": ("devices", "nvrs"), "camera": ("cameras",), "data source": ("data_sources",),
                     "fireworks place": ("fireworks_places",)}[kind]
            if len({item.name for item in items}) == len(items):
                continue  # all distinct: nothing to report
            for i, item in enumerate(items):
                if item.name in names:
                    inv.emit("UNIQ", E, key, (*field, i, "name"), f"{kind} name {item.name} appears twice",
                             ent.code)
                names.add(item.name)


def unique_management_addresses(inv: Inventory) -> None:
    """Gateways and AI boxes are routed over the e-government network: unique province-wide.
    Enterprises are told apart by code, never by name (two enterprises may bear the same name);
    two boxes of one enterprise on one address are unique_within_site's finding."""
    seen: dict[IPv4Address, Enterprise] = {}
    for ent in inv.enterprises:
        for name in ("access_gateway", "daq_gateway", "ai_box"):
            box = getattr(ent.devices, name)
            if box is None:
                continue
            other = seen.setdefault(box.address, ent)
            if other is not ent:
                inv.emit("ADDR", E, enterprise_key(ent.code), ("devices", name, "address"),
                         f"management address {box.address} is already used by {other.name} ({other.code})",
                         ent.code)


RULES = (known_places, unique_within_site, unique_management_addresses)
