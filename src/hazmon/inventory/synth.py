"""A synthetic, national-scale inventory that is valid by construction.

The national system connected 7,000+ enterprises, 20,000+ major hazard sources and 440,000
monitoring points (REQUIREMENTS.md, domain facts): `generate(7000, out)` writes an inventory of
that size over the 21 Sichuan cities, so that the loader, the rules and the Ansible plugin can be
measured at the scale they must hold. Every record obeys every ERROR rule; about one enterprise in
eight carries one deliberate site blocker (N2, N3, N5, V2, R4, D1a) so that readiness and the
lifecycle groups are exercised too.

Addresses: everything routed sits in 198.18.0.0/15 (a /28 per enterprise, unique province-wide;
198.18.0.0/24 is the platform's), cameras in 192.168.0.0/16 (V1). GB/T 28181 IDs are unique and
carry the city prefix and the type code (118 NVR, 131/132 camera); unified social credit codes
carry a correct GB 32100 check character.
"""

from __future__ import annotations

import csv
import random
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import yaml

from hazmon.inventory.model import INT_BOUNDS, REGISTER_WIDTH, DataType, raw_span
from hazmon.inventory.notice import N2_LINE_MIN_MBPS
from hazmon.inventory.reference import CityRef, reference

# National figures (domain facts) per enterprise: the counts scale linearly with --enterprises.
HAZARD_SOURCES_PER_7000 = 20_000
TAGS_PER_7000 = 440_000

ROUTED_NET = IPv4Network("198.18.0.0/15")
PLATFORM_NET = IPv4Network("198.18.0.0/24")
SITE_BLOCK = 16  # addresses per enterprise
MAX_ENTERPRISES = (ROUTED_NET.num_addresses - PLATFORM_NET.num_addresses) // SITE_BLOCK

# Offsets inside an enterprise's /28.
_AGW, _DAQ, _AIBOX, _SWITCH, _NVR0, _SRC0 = 1, 2, 3, 4, 5, 8

# Where hazchem enterprises cluster (relative weights; every city gets some).
_CITY_WEIGHT = {
    "5101": 14, "5103": 6, "5104": 4, "5105": 7, "5106": 7, "5107": 5, "5108": 2, "5109": 4,
    "5110": 5, "5111": 6, "5113": 4, "5114": 5, "5115": 6, "5116": 4, "5117": 6, "5118": 2,
    "5119": 1, "5120": 3, "5132": 1, "5133": 1, "5134": 3,
}

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

_CLASS_KINDS = {
    "罐区": ("level", "temperature", "pressure", "flow", "valve"),
    "装置": ("temperature", "pressure", "flow", "status", "valve"),
    "库区": ("temperature", "status"),
}
_GAS_KINDS = ("combustible_gas", "toxic_gas", "oxygen")
_PREFIX = {"level": "LT", "temperature": "TT", "pressure": "PT", "flow": "FT", "valve": "XV",
           "status": "XS", "combustible_gas": "GT", "toxic_gas": "AT", "oxygen": "OT"}
_V5_LOCATION = {"装置": "production_unit", "罐区": "tank_farm", "库区": "warehouse"}
_FW_PLACES = (("1.1级工房", "fw_workshop_1_1"), ("1.1级成品库", "fw_warehouse_1_1"),
              ("晾晒场入口", "fw_drying_yard_entrance"))
_CSV_FIELDS = ("code", "hazard_source", "kind", "register", "function", "node", "type", "byte_order",
               "word_order", "scale", "offset", "unit", "range_min", "range_max", "alarm_low_low",
               "alarm_low", "alarm_high", "alarm_high_high", "interval")
_BLOCKERS = ("N2", "N3", "N5", "V2", "R4", "D1a")


class SynthError(ValueError):
    """A request the generator cannot honour (named argument, reason)."""


@dataclass
class SynthStats:
    enterprises: int = 0
    hazard_sources: int = 0
    tags: int = 0
    cameras: int = 0
    nvrs: int = 0
    blocked: int = 0
    protocols: Counter[str] = field(default_factory=Counter)
    programmes: Counter[str] = field(default_factory=Counter)
    cities: Counter[str] = field(default_factory=Counter)


def _char_value(ch: str) -> int:
    return int(ch) if ch.isdigit() else ord(ch) - ord("A") + 10


def org_code(body: str) -> str:
    """GB 11714 organisation code: 8 characters and their check character."""
    c = 11 - sum(_char_value(ch) * w for ch, w in zip(body, _ORG_WEIGHTS, strict=True)) % 11
    return body + ("X" if c == 10 else "0" if c == 11 else str(c))


def uscc(city: str, index: int) -> str:
    """A unified social credit code (GB 32100): 9 (industry and commerce) 1 (enterprise), the
    division code, an organisation code whose body holds `index` (so the last 8 characters, the
    slug, are unique), and the check character."""
    body = "91" + city + "00" + org_code(f"MA{index:06d}")
    c = (31 - sum(_USCC_CHARS.index(ch) * w for ch, w in zip(body, _USCC_WEIGHTS, strict=True)) % 31) % 31
    return body + _USCC_CHARS[c]


def city_dir_name(city: CityRef) -> str:
    return f"{city.code}-{re.sub(r'[^a-z0-9]', '', city.en.lower())}"


def _spread(total: int, slots: int, low: int, high: int, rng: random.Random) -> list[int]:
    """`slots` integers in [low, high] summing to `total` (clamped to what is possible)."""
    if slots == 0:
        return []
    total = max(low * slots, min(high * slots, total))
    out = [low] * slots
    rest = total - low * slots
    open_ = list(range(slots))
    while rest > 0:
        # Hand out in rounds of random increments: fast and still uneven like real sites.
        i = rng.randrange(len(open_))
        slot = open_[i]
        step = min(rest, rng.randint(1, 3), high - out[slot])
        out[slot] += step
        rest -= step
        if out[slot] >= high:
            open_[i] = open_[-1]
            open_.pop()
    return out


@dataclass
class _Ids:
    """Province-wide counters for GB/T 28181 IDs (per city and type)."""

    seq: Counter[tuple[str, str]] = field(default_factory=Counter)

    def next(self, city: str, type_code: str) -> str:
        self.seq[(city, type_code)] += 1
        n = self.seq[(city, type_code)]
        if n > 999_999:
            raise SynthError(f"--enterprises: more than 999999 GB/T 28181 IDs of type {type_code} in {city}")
        return f"{city}0000" + "00" + type_code + "6" + f"{n:06d}"


def _tag(kind: str, code: str, hs: str, rng: random.Random) -> dict[str, object]:
    """One tag row with a range and set points that satisfy TAG and GB50493."""
    row: dict[str, object] = {"code": code, "hazard_source": hs, "kind": kind}
    dtype = rng.choice(("float32", "float32", "int16", "uint16", "int32", "uint32", "float64"))
    if kind in ("valve", "status"):
        dtype = "uint16"
        row.update(unit="state", range_min=0, range_max=1)
    elif kind == "level":
        row.update(unit="m", range_min=0, range_max=20, alarm_low=1, alarm_high=17, alarm_high_high=18.5)
    elif kind == "temperature":
        row.update(unit="°C", range_min=-40, range_max=150, alarm_high=60, alarm_high_high=80)
    elif kind == "pressure":
        row.update(unit="MPa", range_min=0, range_max=2.5, alarm_high=1.6, alarm_high_high=2)
    elif kind == "flow":
        row.update(unit="m3/h", range_min=0, range_max=500, alarm_high=450)
    elif kind == "combustible_gas":
        row.update(unit="%LEL", range_min=0, range_max=100, alarm_high=rng.choice((20, 25)),
                   alarm_high_high=rng.choice((40, 50)))
    elif kind == "toxic_gas":
        if rng.random() < 0.5:
            row.update(unit="ppm", range_min=0, range_max=100, alarm_high=10, alarm_high_high=20)
        else:
            row.update(unit="%OEL", range_min=0, range_max=300, alarm_high=100, alarm_high_high=200)
    elif kind == "oxygen":
        row.update(unit="%VOL", range_min=0, range_max=30, alarm_low=19.5, alarm_high=23.5)
    if dtype in ("int16", "uint16", "int32", "uint32") and kind not in ("valve", "status"):
        row["scale"] = 0.01
        lo, hi = raw_span(0.01, 0.0, float(row["range_min"]), float(row["range_max"]))
        low_bound, high_bound = INT_BOUNDS[DataType(dtype)]
        if not low_bound <= lo <= hi <= high_bound:  # valid by construction (TAG): the range must fit
            dtype = "float32"
            del row["scale"]
    row["type"] = dtype
    if dtype != "int16" and dtype != "uint16" and rng.random() < 0.3:
        row["word_order"] = "little"
    if rng.random() < 0.2:
        row["interval"] = 5
    return row


def _hazard_source(ent_no: int, h: int, rng: random.Random) -> dict[str, object]:
    cls = rng.choices(("罐区", "装置", "库区"), (5, 3, 2))[0]
    grade = rng.choice((1, 2, 2, 3, 3, 4))
    return {"code": f"HS-{ent_no:05d}-{h + 1:02d}", "name": f"{h + 1}号{cls}", "class": cls, "grade": grade}


def _add_key_process(src: dict[str, object], rng: random.Random) -> None:
    src["key_processes"] = [rng.choice(sorted(reference().key_processes))]


def _register(src: dict[str, object]) -> None:
    """R1: both registration systems record the same facts as the survey."""
    rec: dict[str, object] = {"class": src["class"], "grade": src["grade"]}
    if src.get("key_processes"):
        rec["key_processes"] = list(src["key_processes"])  # type: ignore[call-overload]
    src["registration"] = {"registry": dict(rec), "platform": dict(rec)}


@dataclass
class _Site:
    """One enterprise's generated record and its tag tables (file name -> rows)."""

    data: dict[str, object]
    tables: dict[str, list[dict[str, object]]]


class Generator:
    """Builds the synthetic inventory one enterprise at a time; counters span the province."""

    def __init__(self, enterprises: int, seed: int) -> None:
        if enterprises < 1:
            raise SynthError("--enterprises: must be at least 1")
        if enterprises > MAX_ENTERPRISES:
            raise SynthError(
                f"--enterprises: at most {MAX_ENTERPRISES} enterprises fit in {ROUTED_NET} "
                f"at {SITE_BLOCK} management addresses each"
            )
        self.n = enterprises
        self.rng = random.Random(seed)
        self.ids = _Ids()
        self.stats = SynthStats()
        ref = reference()
        self.cities = ref.cities
        weights = [_CITY_WEIGHT.get(c.code, 1) for c in self.cities]
        # Every city first (so any run above 21 covers the province), then by weight.
        self.city_of = [*self.cities[: min(enterprises, len(self.cities))]]
        self.city_of += self.rng.choices(self.cities, weights, k=enterprises - len(self.city_of))
        self.rng.shuffle(self.city_of)
        kinds = self._programme_plan()
        self.programmes = kinds
        hazchem = [i for i, p in enumerate(kinds) if "major_hazard" in p]
        hs_total = round(enterprises * HAZARD_SOURCES_PER_7000 / 7000)
        self.hs_count = dict(zip(hazchem, _spread(hs_total, len(hazchem), 1, 8, self.rng), strict=True))
        tag_total = round(enterprises * TAGS_PER_7000 / 7000)
        per_hs = _spread(tag_total, sum(self.hs_count.values()), 6, 60, self.rng)
        self.tags_of: dict[int, list[int]] = {}
        pos = 0
        for i in hazchem:
            self.tags_of[i] = per_hs[pos : pos + self.hs_count[i]]
            pos += self.hs_count[i]

    def _programme_plan(self) -> list[tuple[str, ...]]:
        """Mostly major hazards; some key processes, pipelines, fireworks and tailings ponds."""
        plan: list[tuple[str, ...]] = []
        cycle = (("major_hazard",),) * 12 + (("major_hazard", "key_process"),) * 3 + (
            ("major_hazard", "pipeline"), ("fireworks",), ("tailings_pond",))
        for i in range(self.n):
            plan.append(cycle[(i * 7 + 3) % len(cycle)])
        return plan

    def _protocol(self, i: int, gas: bool) -> str:
        if gas:
            return ("modbus_tcp", "modbus_rtu")[i % 2]
        return ("modbus_tcp", "opc", "modbus_tcp", "modbus_rtu", "opc", "modbus_tcp")[i % 6]

    def enterprise(self, i: int) -> _Site:
        rng, city = self.rng, self.city_of[i]
        progs = self.programmes[i]
        code = uscc(city.code, i + 1)
        slug = code[-8:].lower()
        base = ROUTED_NET.network_address + PLATFORM_NET.num_addresses + SITE_BLOCK * i

        def addr(offset: int) -> str:
            return str(IPv4Address(int(base) + offset))

        fireworks_only = progs == ("fireworks",)
        blocker = rng.choice(_BLOCKERS) if rng.random() < 0.12 else None
        if blocker in ("D1a", "R4") and "major_hazard" not in progs:
            blocker = "N5"  # D1a needs a data source; keep the blocker real everywhere
        if blocker:
            state = "surveyed"
        else:
            state = rng.choices(("surveyed", "provisioned", "verified", "online"), (40, 20, 15, 25))[0]
        contracted = rng.choice((20, 20, 30, 50, 100))
        line: dict[str, object] = {"contracted_mbps": contracted, "carrier": rng.choice(("中国电信", "中国移动",
                                   "中国联通")), "circuit_id": f"SC-{city.code}-{i + 1:06d}"}
        if rng.random() < 0.95 or blocker == "N2":
            measured = max(N2_LINE_MIN_MBPS, round(contracted * rng.uniform(0.9, 1.0), 1))
            line["measured_mbps"] = 12 if blocker == "N2" else measured
            line["measured_on"] = "2026-10-15"
        data: dict[str, object] = {
            "code": code,
            "name": f"{city.name}合成化工{i + 1:05d}有限公司" if not fireworks_only
            else f"{city.name}烟花{i + 1:05d}有限公司",
            "city": city.code,
            "programmes": list(progs),
            "batch": 1 + (i * 5 + rng.randrange(2)) % 4,
            "state": state,
        }
        if blocker == "R4":
            data["annotations"] = ["long_term_shutdown"]
        if "major_hazard" in progs and rng.random() < 0.02:
            data["route"] = {"via": "parent_company", "parent_company": rng.choice(reference().parent_companies)}
        data["line"] = line
        data["site"] = {"control_room_links": 0 if blocker == "N3" else rng.choice((1, 3)),
                        "cabinet_units_free": 10 if blocker == "N5" else rng.choice((16, 20, 24))}

        hazard_sources: list[dict[str, object]] = []
        for h in range(self.hs_count.get(i, 0)):
            src = _hazard_source(i + 1, h, rng)
            hazard_sources.append(src)
        if "key_process" in progs:
            units = [s for s in hazard_sources if s["class"] == "装置"]
            if not units:
                hazard_sources[0]["class"] = "装置"
                hazard_sources[0]["name"] = "1号装置"
                units = [hazard_sources[0]]
            for u in units:
                _add_key_process(u, rng)
        for src in hazard_sources:
            _register(src)
        if hazard_sources:
            data["hazard_sources"] = hazard_sources

        places: list[dict[str, object]] = []
        if "fireworks" in progs:
            places = [{"name": name, "kind": kind} for name, kind in _FW_PLACES]
            data["fireworks_places"] = places

        # Cameras: the duty room (V5) and one per hazard source or fireworks place (V4).
        looks: list[tuple[str, str | None]] = []
        if "major_hazard" in progs:
            looks.append(("duty_room", None))
            looks += [(_V5_LOCATION[str(s["class"])], str(s["code"])) for s in hazard_sources]
        looks += [(str(p["kind"]), str(p["name"])) for p in places]
        if not looks:
            looks = [("other", None)]
        nvr_count = 1 if len(looks) <= 6 else 2
        nvrs, cameras = [], []
        for k in range(nvr_count):
            compliant = not (blocker == "V2" and k == 0)
            nvrs.append({
                "name": f"nvr{k + 1}",
                "vendor": "hikvision" if compliant and k % 2 == 0 else "dahua" if compliant else "generic",
                "gb28181": compliant,
                "channels": 16,
                "address": addr(_NVR0 + k),
                "device_id": self.ids.next(city.code, "118"),
                "credential": f"vault_nvr_{slug}_nvr{k + 1}",
            })
        for c, (loc, covers) in enumerate(looks):
            cam: dict[str, object] = {
                "name": f"cam{c + 1:02d}", "address": f"192.168.{1 + c // 200}.{10 + c % 200}",
                "nvr": f"nvr{1 + c % nvr_count}", "channel": 1 + c // nvr_count,
                "channel_id": self.ids.next(city.code, "132" if c % 4 else "131"), "location": loc,
            }
            if covers is not None:
                cam["covers"] = covers
            cameras.append(cam)

        vendor = rng.choice(("huawei", "h3c"))
        ports = [{"name": f"GigabitEthernet0/0/{p}"} for p in range(1, 9)]
        ports[0]["connected"] = "uplink"
        ports[1]["connected"] = "ai_box"
        for k in range(nvr_count):
            ports[2 + k]["connected"] = f"nvr:nvr{k + 1}"
        devices: dict[str, object] = {
            "access_gateway": {"address": addr(_AGW), "serial": f"AGW-{slug.upper()}"},
        }
        if not fireworks_only:
            devices["daq_gateway"] = {"address": addr(_DAQ), "serial": f"DAQ-{slug.upper()}"}
        devices["ai_box"] = {"address": addr(_AIBOX), "serial": f"AIB-{slug.upper()}"}
        devices["nvrs"] = nvrs
        devices["switch"] = {
            "name": "msw1", "vendor": vendor, "device_type": "huawei" if vendor == "huawei" else "hp_comware",
            "address": addr(_SWITCH), "credential": f"vault_switch_{slug}", "ports": ports,
        }
        data["devices"] = devices
        data["cameras"] = cameras

        tables: dict[str, list[dict[str, object]]] = {}
        if hazard_sources:
            data["data_sources"] = self._data_sources(i, slug, hazard_sources, addr, blocker, tables)
        if "pipeline" in progs:
            data["pipelines"] = [self._pipeline(i)]

        st = self.stats
        st.enterprises += 1
        st.hazard_sources += len(hazard_sources)
        st.tags += sum(len(rows) for rows in tables.values())
        st.cameras += len(cameras)
        st.nvrs += len(nvrs)
        st.blocked += blocker is not None
        st.programmes.update(progs)
        st.cities[city.code] += 1
        return _Site(data, tables)

    def _data_sources(
        self, i: int, slug: str, hazard_sources: list[dict[str, object]], addr, blocker: str | None,
        tables: dict[str, list[dict[str, object]]],
    ) -> list[dict[str, object]]:
        """A DCS for process tags and, at most sites, a GDS for the gas detectors (D1, D2)."""
        rng = self.rng
        process: list[dict[str, object]] = []
        gas: list[dict[str, object]] = []
        with_gds = rng.random() < 0.7
        for src, count in zip(hazard_sources, self.tags_of[i], strict=True):
            kinds = _CLASS_KINDS[str(src["class"])]
            hs = str(src["code"])
            h = hazard_sources.index(src) + 1
            n_gas = max(1, count // 4)
            for n in range(count):
                kind = _GAS_KINDS[n % 3] if n < n_gas else kinds[n % len(kinds)]
                row = _tag(kind, f"{_PREFIX[kind]}{h:02d}{n + 1:03d}", hs, rng)
                (gas if (with_gds and n < n_gas) else process).append(row)
        out = []
        for k, (name, rows, is_gas) in enumerate((("dcs", process, False), ("gds", gas, True))):
            if not rows:
                continue
            proto = self._protocol(i, is_gas)
            if blocker == "D1a" and not is_gas:
                proto = "opc"
            self.stats.protocols[proto] += 1
            src: dict[str, object] = {"name": name, "protocol": proto,
                                      "system": ("中控 ECS-700", "和利时 MACS", "霍尼韦尔 GDS")[k + i % 2]}
            host = addr(_SRC0 + k)
            if proto == "modbus_tcp":
                src.update(host=host, port=502, slave_id=1 + k)
            elif proto == "modbus_rtu":
                src.update(slave_id=1 + k, serial={"port": f"/dev/ttyS{1 + k}", "baud": 9600, "parity": "N",
                                                   "data_bits": 8, "stop_bits": 1})
            else:
                src.update(host=host, opc={
                    "endpoint": f"opc.tcp://{host}:4840/", "server": host,
                    "bridge_installed": blocker != "D1a", "username": "hazmon",
                    "credential": f"vault_opc_{slug}_{name}"})
            reg = 0
            for row in rows:
                if proto == "opc":
                    row["node"] = f"ns=2;s={row['code']}"
                else:
                    row["register"] = reg
                    reg += REGISTER_WIDTH[DataType(str(row["type"]))]
            src["tag_table"] = f"{slug}-{name}.csv"
            tables[src["tag_table"]] = rows  # type: ignore[index]
            out.append(src)
        return out

    def _pipeline(self, i: int) -> dict[str, object]:
        lon, lat = 104.0 + (i % 50) * 0.01, 30.6 + (i % 37) * 0.01
        return {
            "name": f"管线{i + 1:05d}", "operator": "企业自营", "medium": "天然气",
            "design_throughput_t_per_h": 120.0, "pressure_mpa": 4.0, "diameter_mm": 219.0, "length_km": 3.2,
            "points": [{"lon": lon, "lat": lat, "elevation_m": 500.0},
                       {"lon": lon + 0.02, "lat": lat + 0.01, "elevation_m": 505.0}],
            "repair_team": {"name": "抢修一队", "leader": "张工", "phone": "028-10000000", "base": "厂区"},
        }

    def sites(self) -> Iterator[tuple[CityRef, _Site]]:
        for i in range(self.n):
            yield self.city_of[i], self.enterprise(i)


def _province() -> dict[str, object]:
    return {"province": {
        "code": reference().province_code, "name": reference().province_name,
        "platform": {
            "mqtt": {"host": "198.18.0.10", "port": 8883, "tls": True},
            "sip": {"server_id": "51000000002006000001", "domain": "5100000000", "host": "198.18.0.11",
                    "port": 5060},
            "ntp": ["198.18.0.14"],  # not the MQTT address: in a lab that is the broker host's
            "prometheus": {"host": "198.18.0.12", "port": 9090},
            "alertmanager": {"host": "198.18.0.12", "port": 9093},
            "tracker": {"host": "198.18.0.13", "port": 9910},
        },
    }}


def _dump(data: object, file: Path, header: str) -> None:
    text = yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False, width=120)
    file.write_text(header + text, encoding="utf-8")


def _write_table(rows: list[dict[str, object]], file: Path) -> None:
    with file.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, _CSV_FIELDS, extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)


def generate(out: Path | str, enterprises: int = 7000, seed: int = 1, force: bool = False) -> SynthStats:
    """Write the synthetic inventory under `out` (province.yml, cities/...) and return its counts."""
    out = Path(out)
    if (out / "province.yml").exists() or (out / "cities").exists():
        if not force:
            raise SynthError(f"--out: {out} already holds an inventory (province.yml or cities/); "
                             "pass --force to replace it")
        shutil.rmtree(out / "cities", ignore_errors=True)
    gen = Generator(enterprises, seed)
    out.mkdir(parents=True, exist_ok=True)
    note = f"# Synthetic inventory (hazmon inventory synth --enterprises {enterprises} --seed {seed}).\n"
    _dump(_province(), out / "province.yml", note)
    # The Ansible inventory source (the loader reads only province.yml and cities/).
    _dump({"plugin": "hazmon", "cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_timeout": 0},
          out / "hazmon.yml", note)
    for city in reference().cities:
        cdir = out / "cities" / city_dir_name(city)
        (cdir / "enterprises").mkdir(parents=True, exist_ok=True)
        _dump({"code": city.code, "name": city.name, "en": city.en,
               "uplink": {"contracted_mbps": 100, "measured_mbps": 100, "measured_on": "2026-10-01"},
               "contacts": [{"name": f"{city.name}值班室", "role": "duty"}]}, cdir / "city.yml", note)
    for city, site in gen.sites():
        edir = out / "cities" / city_dir_name(city) / "enterprises"
        slug = str(site.data["code"])[-8:].lower()
        _dump(site.data, edir / f"{slug}.yml", "")
        for name, rows in site.tables.items():
            _write_table(rows, edir / name)
    return gen.stats
