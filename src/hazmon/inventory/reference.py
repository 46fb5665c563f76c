"""Reference data of the notice and the standards it leans on (GB/T 2260, GB/T 28181,
GB/T 50493, GB 18218). Read from reference-data.yml, the one copy in the project."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml


@dataclass(frozen=True, slots=True)
class CityRef:
    code: str  # 4 digits, the GB/T 2260 prefix (5101)
    name: str
    en: str


@dataclass(frozen=True, slots=True)
class Reference:
    province_code: str  # 2 digits (51)
    province_name: str
    cities: tuple[CityRef, ...]
    key_processes: frozenset[str]
    hazard_classes: tuple[str, ...]
    gb28181_types: dict[str, str]
    combustible_l1_max: float
    combustible_l2_max: float
    toxic_l1_max: float
    toxic_l2_max: float
    oxygen_high: float
    oxygen_low: float
    parent_companies: tuple[str, ...]

    def city(self, code: str) -> CityRef | None:
        return next((c for c in self.cities if c.code == code), None)


@cache
def reference() -> Reference:
    raw = yaml.safe_load(files("hazmon.inventory").joinpath("reference-data.yml").read_text("utf-8"))
    gas = raw["gas_alarm_limits"]
    return Reference(
        province_code=raw["province"]["code"][:2],
        province_name=raw["province"]["name"],
        cities=tuple(CityRef(c["code"][:4], c["name"], c["en"]) for c in raw["cities"]),
        key_processes=frozenset(raw["key_processes"]),
        hazard_classes=tuple(raw["hazard_source_classes"]),
        gb28181_types={str(k): v for k, v in raw["gb28181"]["types"].items()},
        combustible_l1_max=gas["combustible"]["level1_max_pct_lel"],
        combustible_l2_max=gas["combustible"]["level2_max_pct_lel"],
        toxic_l1_max=gas["toxic"]["level1_max_pct_oel"],
        toxic_l2_max=gas["toxic"]["level2_max_pct_oel"],
        oxygen_high=gas["oxygen"]["high_pct_vol"],
        oxygen_low=gas["oxygen"]["low_pct_vol"],
        parent_companies=tuple(raw["parent_companies"]),
    )
