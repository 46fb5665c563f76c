"""The device modules' view of the model: validated once per inventory version, then one enterprise each."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hazmon.devices import site
from hazmon.devices.site import DeviceError, load_site
from hazmon.inventory.loader import Inventory

from .conftest import LAB


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAZMON_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "lab"
    shutil.copytree(LAB, copy, ignore=shutil.ignore_patterns(".vault-pass", "group_vars"))
    return copy


def test_the_cached_enterprise_is_the_validated_one(inventory: Path, lab_inventory: Inventory) -> None:
    first_inv, first = load_site(inventory, "labe0002")
    again_inv, again = load_site(inventory, "91510500MALABE0002")  # by code, from the cache now
    assert first == again == lab_inventory.enterprise("labe0002")
    assert first_inv.province == again_inv.province == lab_inventory.province
    assert again_inv.root == inventory.resolve()
    assert len([p for p in (Path(site.cache_root()) / "devices").iterdir() if p.is_dir()]) == 1


def test_a_cached_site_is_read_without_validating(inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_site(inventory, "labe0001")

    def no(*_: object) -> None:
        raise AssertionError("validated again although the inventory did not change")

    monkeypatch.setattr(site, "load_valid", no)
    assert load_site(inventory, "labe0005")[1].code == "91510500MALABE0005"


def test_an_edit_is_validated_before_any_device_sees_it(inventory: Path) -> None:
    load_site(inventory, "labe0001")
    record = next(inventory.glob("cities/*/enterprises/labe0001-chem.yml"))
    text = record.read_text(encoding="utf-8")
    record.write_text(text.replace("channels: 16", "channels: 32"), encoding="utf-8")
    assert load_site(inventory, "labe0001")[1].devices.nvrs[0].channels == 32
    record.write_text(text.replace("gb28181: true", "gb28181: maybe"), encoding="utf-8")
    with pytest.raises(DeviceError, match="is invalid"):
        load_site(inventory, "labe0001")


def test_unknown_enterprise(inventory: Path) -> None:
    with pytest.raises(DeviceError, match="enterprise labe9999: not in the inventory"):
        load_site(inventory, "labe9999")


def test_caching_off_still_works(inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAZMON_CACHE_DIR", "off")
    assert load_site(inventory, "labe0003")[1].slug == "labe0003"


def test_processes_starting_together_validate_once(inventory: Path, tmp_path: Path) -> None:
    script = ("import sys; from hazmon.devices import site; calls = []; real = site.load_valid\n"
              "site.load_valid = lambda root: (calls.append(1), real(root))[1]\n"
              "site.load_site(sys.argv[1], sys.argv[2]); print(len(calls))")
    env = {"HAZMON_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(inventory), f"labe000{i}"], env=env,
                              stdout=subprocess.PIPE, text=True) for i in range(1, 6)]
    validations = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert sorted(validations) == [0, 0, 0, 0, 1]
