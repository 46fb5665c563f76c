"""The synthetic national-scale inventory: valid by construction, and its counts scale."""

from __future__ import annotations

import argparse
from collections import Counter
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from hazmon.cli import synth as synth_cli
from hazmon.inventory.findings import Severity
from hazmon.inventory.model import Enterprise
from hazmon.inventory.reference import reference
from hazmon.inventory.validate import validate

ROUTED = ip_network("198.18.0.0/15")
CAMERAS = ip_network("192.168.0.0/16")
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hazmon inventory")
    synth_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synth", *argv])
    return int(args.func(args))


@pytest.fixture(scope="module")
def synth200(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "s200"
    assert run_cli("--enterprises", "200", "--out", str(out), "--seed", "7") == 0
    inv, readiness = validate(out)
    return out, inv, readiness


def uscc_ok(code: str) -> bool:
    """GB 32100 check character, computed independently of the generator."""
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31] == code[17]


def test_a_synthetic_inventory_validates_with_zero_errors(synth200):
    _, inv, readiness = synth200
    errors = inv.report.errors
    assert errors == [], "\n".join(f.render(inv.root) for f in errors[:20])
    assert len(inv.enterprises) == 200
    # Readiness and lifecycle are exercised: some enterprises blocked, several lifecycles.
    lifecycles = Counter(str(r.lifecycle) for r in readiness)
    assert {"ready", "surveyed", "online"} <= set(lifecycles)
    assert any(f.severity is Severity.BLOCKER for f in inv.report.findings)


def test_counts_scale_with_the_national_figures(synth200, tmp_path):
    _, inv, _ = synth200
    small = tmp_path / "s100"
    assert run_cli("--enterprises", "100", "--out", str(small)) == 0
    inv100, _ = validate(small)
    assert inv100.report.errors == []

    def counts(enterprises: list[Enterprise]) -> tuple[int, int, int]:
        sources = sum(len(e.hazard_sources) for e in enterprises)
        tags = sum(len(s.tags) for e in enterprises for s in e.data_sources)
        return len(enterprises), sources, tags

    # 7,000 enterprises : 20,000 hazard sources : 440,000 tags (the national figures).
    assert counts(inv.enterprises) == (200, round(200 * 20000 / 7000), round(200 * 440000 / 7000))
    assert counts(inv100.enterprises) == (100, round(100 * 20000 / 7000), round(100 * 440000 / 7000))


def test_every_city_protocol_and_programme_is_present(synth200):
    out, inv, _ = synth200
    ref_codes = {c.code for c in reference().cities}
    assert {e.city for e in inv.enterprises} == ref_codes  # all 21, and only real GB/T 2260 codes
    assert {str(s.protocol) for e in inv.enterprises for s in e.data_sources} == {"opc", "modbus_tcp",
                                                                                   "modbus_rtu"}
    assert {str(p) for e in inv.enterprises for p in e.programmes} == {
        "major_hazard", "key_process", "fireworks", "pipeline", "tailings_pond"}
    # Tag tables are CSV files beside the enterprise YAML.
    assert len(list(out.rglob("*.csv"))) >= 200
    assert all(s.tag_table for e in inv.enterprises for s in e.data_sources)


def test_addresses_ids_and_codes_are_unique_and_well_formed(synth200):
    _, inv, _ = synth200
    routed: list[str] = []
    gb_ids: list[str] = []
    for ent in inv.enterprises:
        assert uscc_ok(ent.code), ent.code
        dev = ent.devices
        boxes = [b for b in (dev.access_gateway, dev.daq_gateway, dev.ai_box) if b is not None]
        routed += [str(b.address) for b in boxes]
        routed += [str(n.address) for n in dev.nvrs] + ([str(dev.switch.address)] if dev.switch else [])
        routed += [str(s.host) for s in ent.data_sources if s.host is not None]
        for nvr in dev.nvrs:
            assert nvr.device_id is not None and nvr.device_id[:4] == ent.city and nvr.device_id[10:13] == "118"
            gb_ids.append(nvr.device_id)
        for cam in ent.cameras:
            assert ip_address(cam.address) in CAMERAS  # V1
            assert cam.channel_id is not None and cam.channel_id[:4] == ent.city
            assert cam.channel_id[10:13] in ("131", "132")
            gb_ids.append(cam.channel_id)
    assert all(ip_address(a) in ROUTED for a in routed)
    assert len(routed) == len(set(routed)), "management addresses must be unique province-wide"
    assert len(gb_ids) == len(set(gb_ids))
    codes = [e.code for e in inv.enterprises]
    assert len(codes) == len(set(codes))
    assert len({e.slug for e in inv.enterprises}) == len(codes)  # host names stay unique


def test_same_seed_same_inventory_and_an_existing_inventory_is_kept(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("--enterprises", "30", "--out", str(a), "--seed", "3") == 0
    assert run_cli("--enterprises", "30", "--out", str(b), "--seed", "3") == 0

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(a) == files(b)
    before = files(a)
    assert run_cli("--enterprises", "5", "--out", str(a)) == 2  # refuses to overwrite
    assert files(a) == before
    assert run_cli("--enterprises", "5", "--out", str(a), "--force") == 0
    assert len(list((a / "cities").rglob("*.yml"))) == 21 + 5
    assert run_cli("--enterprises", "0", "--out", str(tmp_path / "c")) == 2
