"""The NVRs' secrets (N8): a SIP password per NVR where the platform keeps one per device, named by
the model, generated for the lab, handed to each NVR by the nvr role; and vault password files that
git never takes, whatever the environment."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hazmon.inventory.loader import Inventory
from hazmon.inventory.secrets import VAULT_FILE, VAULT_PASS_FILE, credential_refs, ensure_lab_vault, read_vault
from hazmon.inventory.validate import load_valid
from hazmon.testing.procs import stop

from .conftest import LAB, start_video_sims

REPO = LAB.parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
DEVICE = "51010000001186000001"  # labe0001 nvr1


def lab_nvrs(inv: Inventory) -> list[tuple[str, str]]:
    return [(ent.slug, nvr.name) for ent in inv.enterprises for nvr in ent.devices.nvrs if nvr.gb28181]


def without_vault(tmp: Path) -> Path:
    """A copy of the lab inventory with no vault (nor its password)."""
    root = tmp / "inv"
    shutil.copytree(LAB, root, ignore=shutil.ignore_patterns(VAULT_PASS_FILE, VAULT_FILE.name))
    return root


def test_per_device_passwords_name_one_vault_variable_per_nvr(lab_inventory: Inventory) -> None:
    assert lab_inventory.province is not None and lab_inventory.province.platform.sip.per_device_passwords
    names = credential_refs(lab_inventory)
    per_nvr = {f"vault_sip_{slug}_{name}" for slug, name in lab_nvrs(lab_inventory)}
    assert len(per_nvr) == len(lab_nvrs(lab_inventory)) >= 6 and per_nvr <= set(names)
    assert "vault_sip_password" not in names  # no device may register with a shared one
    # A platform with one password for the province: that one, and no per-NVR names.
    province = lab_inventory.province.model_copy(deep=True)
    province.platform.sip.per_device_passwords = False
    names = credential_refs(dataclasses.replace(lab_inventory, province=province))
    assert "vault_sip_password" in names and not per_nvr & set(names)


def test_the_lab_vault_gets_a_distinct_password_for_every_nvr(tmp_path: Path) -> None:
    inv, _ = load_valid(without_vault(tmp_path))
    values = ensure_lab_vault(inv)
    own = [values[f"vault_sip_{slug}_{name}"] for slug, name in lab_nvrs(inv)]
    assert len(set(own)) == len(own) and all(len(v) >= 24 for v in own)
    assert read_vault(inv.root) == values
    for path in (inv.root / VAULT_FILE, inv.root / VAULT_PASS_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_filter_names_the_nvrs_own_or_the_provinces_password() -> None:
    path = REPO / "plugins" / "filter" / "hazmon_nvr.py"
    spec = importlib.util.spec_from_file_location("hazmon_nvr_filter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name = module.FilterModule().filters()["hazmon_sip_credential"]
    assert name({"per_device_passwords": True}, "labe0001", "nvr1") == "vault_sip_labe0001_nvr1"
    assert name({"per_device_passwords": True}, "labe0001", "NVR-2 东") == "vault_sip_labe0001_nvr_2"
    assert name({"per_device_passwords": False}, "labe0001", "nvr1") == "vault_sip_password"
    assert name({}, "labe0001", "nvr1") == "vault_sip_password"  # an inventory written before the setting


@pytest.mark.integration
def test_the_nvr_role_hands_each_nvr_its_own_password(tmp_path: Path) -> None:
    """The whole role, from the lab inventory (per-device passwords), against the NVR and a registrar
    that knows only this NVR's own password: the province's shared one is defined but never sent."""
    root = without_vault(tmp_path)
    own, shared = "own-sip-" + os.urandom(6).hex(), "shared-sip-" + os.urandom(6).hex()
    sims, procs = start_video_sims(tmp_path / "sims", {DEVICE: own})
    try:
        (tmp_path / "play.yml").write_text(yaml.safe_dump([{
            "name": "nvr", "hosts": "role_nvr", "gather_facts": False, "roles": [{"role": "nvr"}]}]))
        settings = {"vault_nvr_labe0001_nvr1": sims.nvr_password, "vault_sip_password": shared,
                    "nvr_address": sims.nvr_url.removeprefix("https://"), "nvr_isapi_ca_file": str(sims.ca_file),
                    "nvr_sip_registrar": "127.0.0.1", "nvr_sip_registrar_port": sims.sip_port,
                    "nvr_sip_local_port": sims.local_port, "nvr_sip_heartbeat": 1,
                    "nvr_registration_status_url": sims.status_url, "nvr_registration_timeout": 20}

        def run(extra: dict[str, object]) -> subprocess.CompletedProcess[str]:
            fd = os.open(tmp_path / "vars.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({**settings, **extra}, fh)
            env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
            return subprocess.run([str(PLAYBOOK), "-i", str(root / "hazmon.yml"), "--limit", "labe0001-nvr-nvr1",
                                   "-e", f"@{tmp_path / 'vars.json'}", str(tmp_path / "play.yml")],
                                  capture_output=True, text=True, env=env, timeout=300, check=False)

        missing = run({})
        assert missing.returncode == 2, missing.stdout[-3000:] + missing.stderr[-2000:]
        assert "the vault variables vault_nvr_labe0001_nvr1 (nvr_credential) and vault_sip_labe0001_nvr1 " \
               "(nvr_sip_password_var" in missing.stdout
        assert sims.nvr_status()["sip"]["enabled"] is False  # stopped at the preflight

        done = run({"vault_sip_labe0001_nvr1": own})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        registrations = json.loads((tmp_path / "sims" / "registrar" / "registrations.json").read_text())
        assert registrations["devices"][DEVICE]["registered"] and registrations["rejections"] == []
        for secret in (own, shared, sims.nvr_password):
            assert secret not in done.stdout + done.stderr
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_every_environments_vault_password_file_is_ignored_by_git() -> None:
    """A new environment's .vault-pass (and the other usual spellings) never reach a commit; its
    inventory files and an encrypted vault.yml may."""
    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path],
                              capture_output=True, text=True, check=False)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode == 0

    for path in ("inventories/guangdong/.vault-pass", "inventories/sichuan/.vault-pass", "inventories/lab/.vault-pass",
                 "inventories/staging/.vault-pass.bak", "inventories/staging/.vault_password", ".vault-pass",
                 "inventories/lab/group_vars/all/vault.yml"):
        assert ignored(path), f"{path} is not ignored by git"
    for path in ("inventories/guangdong/province.yml", "inventories/guangdong/group_vars/all/vault.yml",
                 "inventories/lab/group_vars/all/nvr.yml"):
        assert not ignored(path), f"{path} is ignored by git"
