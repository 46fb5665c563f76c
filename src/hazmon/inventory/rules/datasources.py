"""Data-acquisition rules: D1 (a-c), tag sanity, GB/T 50493 set points, register maps."""

from __future__ import annotations

from itertools import islice, pairwise, repeat
from math import isfinite
from operator import attrgetter, le

from hazmon.inventory.findings import Severity
from hazmon.inventory.loader import Inventory, enterprise_key
from hazmon.inventory.model import (
    INT_BOUNDS,
    REGISTER_WIDTH,
    DataSource,
    Enterprise,
    Programme,
    Protocol,
    Tag,
    raw_span,
)
from hazmon.inventory.reference import Reference, reference

E, B, W = Severity.ERROR, Severity.BLOCKER, Severity.WARNING

# What each protocol must state (the notice's D1a-c lists), as (rule, field path, words).
_REQUIRED: dict[Protocol, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    Protocol.OPC: (
        ("D1a", ("opc", "endpoint"), "the OPC server's (or its UA bridge's) endpoint"),
        ("D1a", ("opc", "server"), "the OPC server's IP address"),
        ("D1a", ("opc", "bridge_installed"), "whether the bridge component is installed"),
        ("D1a", ("opc", "username"), "the OPC user name"),
        ("D1a", ("opc", "credential"), "the vault name of the OPC password"),
    ),
    Protocol.MODBUS_RTU: (
        ("D1b", ("serial", "port"), "the spare RS-485 port"),
        ("D1b", ("serial", "baud"), "the baud rate"),
        ("D1b", ("serial", "parity"), "the parity"),
        ("D1b", ("serial", "data_bits"), "the data bits"),
        ("D1b", ("serial", "stop_bits"), "the stop bits"),
        ("D1b", ("slave_id",), "the slave ID"),
    ),
    Protocol.MODBUS_TCP: (
        ("D1c", ("host",), "the DCS IP address"),
        ("D1c", ("port",), "the DCS Modbus TCP port"),
        ("D1c", ("slave_id",), "the slave ID"),
    ),
}
_RULE_OF = {Protocol.OPC: "D1a", Protocol.MODBUS_RTU: "D1b", Protocol.MODBUS_TCP: "D1c"}


def _get(obj: object, path: tuple[str, ...]) -> object:
    for part in path:
        obj = getattr(obj, part, None) if obj is not None else None
    return obj


def d1_presence(inv: Inventory) -> None:
    for ent in inv.enterprises:
        needs = ent.has(Programme.MAJOR_HAZARD) or ent.has(Programme.KEY_PROCESS)
        if needs and not ent.data_sources:
            inv.emit("D1", B, enterprise_key(ent.code), ("data_sources",),
                     "no DCS/GDS data source is recorded: the site must offer OPC, Modbus RTU or "
                     "Modbus TCP", ent.code)


def d1_fields(inv: Inventory) -> None:
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        for i, src in enumerate(ent.data_sources):
            base = ("data_sources", i)
            for rule, path, words in _REQUIRED[src.protocol]:
                if _get(src, path) is None:
                    inv.emit(rule, E, key, (*base, *path),
                             f"source {src.name} ({src.protocol}) does not give {words}", ent.code)
            if src.protocol is Protocol.OPC and src.opc and src.opc.bridge_installed is False:
                inv.emit("D1a", B, key, (*base, "opc", "bridge_installed"),
                         f"the OPC bridge component is not installed on source {src.name}'s server",
                         ent.code)
            rule = _RULE_OF[src.protocol]
            if not src.tags:
                inv.emit(rule, E, key, (*base, "tags"),
                         f"source {src.name} has no tag table (位号表)", ent.code)
            opc = src.protocol is Protocol.OPC
            if all(map(_NODE, src.tags)) if opc else None not in list(map(_REG, src.tags)):
                continue  # every tag addressed: nothing to report (the common case, checked in C)
            for j, tag in enumerate(src.tags):
                if src.protocol is Protocol.OPC and not tag.node:
                    inv.emit(rule, E, key, (*base, "tags", j, "node"),
                             f"tag {tag.code} has no OPC node ID", ent.code)
                if src.protocol is not Protocol.OPC and tag.reg is None:
                    inv.emit(rule, E, key, (*base, "tags", j, "register"),
                             f"tag {tag.code} has no register address", ent.code)


def _alarm_order(tag: Tag) -> list[tuple[str, float]]:
    points = [("alarm_low_low", tag.alarm_low_low), ("alarm_low", tag.alarm_low),
              ("alarm_high", tag.alarm_high), ("alarm_high_high", tag.alarm_high_high)]
    return [(n, v) for n, v in points if v is not None]


def _check_tag(inv: Inventory, ent: Enterprise, key: str, base: tuple, tag: Tag, sources: set[str]) -> None:
    ref = reference()
    if tag.hazard_source not in sources:
        inv.emit("REF", E, key, (*base, "hazard_source"),
                 f"tag {tag.code} belongs to hazard source {tag.hazard_source!r}, which is not recorded",
                 ent.code)
    if tag.range_min >= tag.range_max:
        inv.emit("TAG", E, key, (*base, "range_max"),
                 f"tag {tag.code}'s instrument range {tag.range_min:g}..{tag.range_max:g} is empty", ent.code)
    if not _representable(tag):
        lo, hi = INT_BOUNDS[tag.type]
        inv.emit("TAG", E, key, (*base, "type"),
                 f"tag {tag.code}: its instrument range {tag.range_min:g}..{tag.range_max:g} does not fit a "
                 f"{tag.type} register ({lo}..{hi}) at scale {tag.scale:g}, offset {tag.offset:g}: pick a wider "
                 "or signed type, or another scale", ent.code)
    points = _alarm_order(tag)
    for (n1, v1), (n2, v2) in pairwise(points):
        if v1 > v2:
            inv.emit("TAG", E, key, (*base, n2),
                     f"tag {tag.code}: {n2} ({v2:g}) is below {n1} ({v1:g})", ent.code)
    for name, value in points:
        if not tag.range_min <= value <= tag.range_max:
            inv.emit("TAG", E, key, (*base, name),
                     f"tag {tag.code}: set point {value:g} lies outside the instrument range "
                     f"{tag.range_min:g}..{tag.range_max:g}", ent.code)
    if tag.kind == "combustible_gas":
        if tag.unit != "%LEL":
            inv.emit("GB50493", E, key, (*base, "unit"),
                     f"combustible-gas tag {tag.code} must read in %LEL, not {tag.unit!r}", ent.code)
        for name, limit in (("alarm_high", ref.combustible_l1_max), ("alarm_high_high", ref.combustible_l2_max)):
            value = getattr(tag, name)
            if value is not None and value > limit:
                level = 1 if name == "alarm_high" else 2
                inv.emit("GB50493", E, key, (*base, name),
                         f"combustible-gas tag {tag.code}: level-{level} alarm at {value:g} %LEL; "
                         f"GB/T 50493 allows at most {limit:g} %LEL", ent.code)
    if tag.kind == "toxic_gas" and tag.unit == "%OEL":
        for name, limit in (("alarm_high", ref.toxic_l1_max), ("alarm_high_high", ref.toxic_l2_max)):
            value = getattr(tag, name)
            if value is not None and value > limit:
                inv.emit("GB50493", E, key, (*base, name),
                         f"toxic-gas tag {tag.code}: alarm at {value:g} %OEL; GB/T 50493 allows at most "
                         f"{limit:g} %OEL", ent.code)
    if tag.kind == "oxygen":
        if tag.alarm_high is not None and tag.alarm_high > ref.oxygen_high:
            inv.emit("GB50493", E, key, (*base, "alarm_high"),
                     f"oxygen tag {tag.code}: high alarm above {ref.oxygen_high:g} %VOL", ent.code)
        if tag.alarm_low is not None and tag.alarm_low < ref.oxygen_low:
            inv.emit("GB50493", E, key, (*base, "alarm_low"),
                     f"oxygen tag {tag.code}: low alarm below {ref.oxygen_low:g} %VOL", ent.code)


def _representable(tag: Tag) -> bool:
    """Whether the register's integer type can carry the whole instrument range."""
    bounds = INT_BOUNDS.get(tag.type)
    if bounds is None or tag.scale == 0:
        return bounds is None
    lo, hi = raw_span(tag.scale, tag.offset, tag.range_min, tag.range_max)
    # A tiny scale over a wide range overflows to infinity, which no register holds (and round() refuses).
    return isfinite(lo) and isfinite(hi) and bounds[0] <= round(lo) and round(hi) <= bounds[1]


_GAS_KINDS = frozenset({"combustible_gas", "toxic_gas", "oxygen"})
_REG, _NODE, _FUNCTION, _TYPE, _CODE = (attrgetter(a) for a in ("reg", "node", "function", "type", "code"))


def _gas_fine(tag: Tag, ref: Reference) -> bool:
    """True only when _check_tag's GB/T 50493 checks would find nothing (NaN goes the slow way)."""
    kind = tag.kind
    if kind == "combustible_gas":
        high, high_high = tag.alarm_high, tag.alarm_high_high
        return (tag.unit == "%LEL" and (high is None or high <= ref.combustible_l1_max)
                and (high_high is None or high_high <= ref.combustible_l2_max))
    if kind == "toxic_gas":
        high, high_high = tag.alarm_high, tag.alarm_high_high
        return (tag.unit != "%OEL" or ((high is None or high <= ref.toxic_l1_max)
                                       and (high_high is None or high_high <= ref.toxic_l2_max)))
    if kind == "oxygen":
        high, low = tag.alarm_high, tag.alarm_low
        return (high is None or high <= ref.oxygen_high) and (low is None or low >= ref.oxygen_low)
    return True


def _plainly_fine(tag: Tag, sources: set[str], ref: Reference, fits: dict[tuple[object, ...], bool]) -> bool:
    """True only when _check_tag would find nothing: a fast path for the common tag (440,000 of
    them at national scale); anything doubtful goes through _check_tag and its messages.
    `fits` remembers _representable by its inputs: instrument types repeat across sites."""
    if tag.hazard_source not in sources:
        return False
    low, high = tag.range_min, tag.range_max
    if not low < high:
        return False
    shape = (tag.type, tag.scale, tag.offset, low, high)
    fit = fits.get(shape)
    if fit is None:
        fit = fits[shape] = _representable(tag)
    if not fit:
        return False
    prev = low
    for value in (tag.alarm_low_low, tag.alarm_low, tag.alarm_high, tag.alarm_high_high):
        if value is not None:
            if not prev <= value <= high:
                return False
            prev = value
    return tag.kind not in _GAS_KINDS or _gas_fine(tag, ref)


def tags(inv: Inventory) -> None:
    ref = reference()
    fits: dict[tuple[object, ...], bool] = {}
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        sources = {s.code for s in ent.hazard_sources}
        seen: dict[str, str] = {}
        for i, src in enumerate(ent.data_sources):
            codes = list(map(_CODE, src.tags))
            # The common source: codes unique, every tag plainly fine. Checked in bulk; any doubt
            # and the source goes tag by tag below, emitting in the same order as ever.
            if (len(set(codes)) == len(codes) and seen.keys().isdisjoint(codes)
                    and all(map(_plainly_fine, src.tags, repeat(sources), repeat(ref), repeat(fits)))):
                seen.update(dict.fromkeys(codes, src.name))
                continue
            for j, tag in enumerate(src.tags):
                if tag.code in seen:
                    inv.emit("UNIQ", E, key, ("data_sources", i, "tags", j, "code"),
                             f"tag code {tag.code} is already used in source {seen[tag.code]}", ent.code)
                seen[tag.code] = src.name
                if not _plainly_fine(tag, sources, ref, fits):
                    _check_tag(inv, ent, key, ("data_sources", i, "tags", j), tag, sources)


def _overlaps(src: DataSource) -> list[tuple[int, str, str]]:
    """Tags whose registers overlap an earlier tag's (same function table)."""
    regs = list(map(_REG, src.tags))
    if None not in regs and len(set(map(_FUNCTION, src.tags))) <= 1:
        # One function table, registers ascending without overlap in file order (the usual
        # register map): sorted, they are the same, and nothing overlaps.
        ends = [reg + REGISTER_WIDTH[kind] for reg, kind in zip(regs, map(_TYPE, src.tags), strict=True)]
        if all(map(le, ends, islice(regs, 1, None))):
            return []
    out = []
    spans = sorted(
        ((t.function, t.reg, t.reg + REGISTER_WIDTH[t.type], j, t.code)
         for j, t in enumerate(src.tags) if t.reg is not None),
    )
    prev = None
    for fn, start, end, j, code in spans:
        if prev and prev[0] == fn and start < prev[2]:
            out.append((j, code, prev[4]))
        if not prev or prev[0] != fn or end > prev[2]:
            prev = (fn, start, end, j, code)
    return out


def register_map(inv: Inventory) -> None:
    for ent in inv.enterprises:
        for i, src in enumerate(ent.data_sources):
            if src.protocol is Protocol.OPC:
                continue
            for j, code, other in _overlaps(src):
                inv.emit("REGMAP", E, enterprise_key(ent.code), ("data_sources", i, "tags", j, "register"),
                         f"tag {code}'s registers overlap those of tag {other} in source {src.name}", ent.code)


RULES = (d1_presence, d1_fields, tags, register_map)
