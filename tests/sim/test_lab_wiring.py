"""How the lab starts the NVR simulators and the platform's registrar (N8), without starting a lab:
each NVR gets an HTTPS certificate for its address from the run's CA, and the registrar gets the
NVRs' own SIP passwords in a 0600 table, never on a command line."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import IsapiAccess
from hazmon.inventory.secrets import credential_refs, sip_credential
from hazmon.inventory.validate import load_valid
from hazmon.lab import tls
from hazmon.lab.devices import lab_ca, site_sims, tls_dir
from hazmon.lab.plan import build_plan
from hazmon.lab.services import province_services
from hazmon.lab.state import DEFAULT_STATE_DIR

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


@pytest.fixture(scope="module")
def lab() -> Inventory:
    return load_valid(LAB)[0]


def fake_vault(inv: Inventory) -> dict[str, str]:
    return {name: f"{name}-value" for name in credential_refs(inv)}


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_each_nvr_sim_serves_https_with_a_certificate_for_its_address(lab: Inventory, tmp_path: Path) -> None:
    plan = build_plan(lab)
    site = plan.site_for("labe0001")
    nvr = site.enterprise.devices.nvrs[0]
    spec = next(s for s in site_sims(site, LAB, fake_vault(lab), tmp_path) if s.kind == "nvr")
    assert option(spec.argv, "--https-port") == "443" and option(spec.argv, "--port") == "80"
    assert spec.listen == (str(nvr.address), 80, "tcp")  # the sim opens 443 first
    cert_path, key_path = Path(option(spec.argv, "--tls-cert") or ""), Path(option(spec.argv, "--tls-key") or "")
    ca = lab_ca(tmp_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert.read_bytes()))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == [str(nvr.address)]
    for private in (key_path, ca.key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    # One CA per run: a second start (what already runs is left alone) keeps it.
    before = ca.cert.read_bytes()
    site_sims(site, LAB, fake_vault(lab), tmp_path)
    assert lab_ca(tmp_path).cert.read_bytes() == before
    # An NVR recorded without HTTPS is simulated without it.
    plain_nvr = nvr.model_copy(update={"isapi": IsapiAccess(scheme="http")})
    devices = site.enterprise.devices.model_copy(update={"nvrs": [plain_nvr]})
    plain = dataclasses.replace(site, enterprise=site.enterprise.model_copy(update={"devices": devices}))
    spec = next(s for s in site_sims(plain, LAB, fake_vault(lab), tmp_path) if s.kind == "nvr")
    assert "--tls-cert" not in spec.argv and option(spec.argv, "--port") == "80"


def test_the_control_nodes_ca_file_is_the_lab_runs_ca() -> None:
    """inventories/lab/group_vars/all/nvr.yml names where lab_ca puts the CA ($HAZMON_LAB_STATE, else
    the default run dir)."""
    value = yaml.safe_load((LAB / "group_vars" / "all" / "nvr.yml").read_text(encoding="utf-8"))["nvr_isapi_ca_file"]
    run_dir = "{{ lookup('ansible.builtin.env', 'HAZMON_LAB_STATE') | default('/run/hazmon-lab', true) }}"
    assert value.startswith(run_dir) and str(DEFAULT_STATE_DIR) == "/run/hazmon-lab"
    assert value.replace(run_dir, str(DEFAULT_STATE_DIR)) == str(tls_dir(DEFAULT_STATE_DIR) / tls.CA_CERT)


def registrar_argv(inv: Inventory, tmp_path: Path, vault: dict[str, str]) -> list[str]:
    assert inv.province is not None
    specs = province_services(build_plan(inv), inv.province, vault, tmp_path, LAB)
    return next(s for s in specs if s.name == "svc:registrar").argv


def test_the_registrar_gets_each_nvrs_own_password_in_a_0600_table(lab: Inventory, tmp_path: Path) -> None:
    vault = fake_vault(lab)
    argv = registrar_argv(lab, tmp_path, vault)
    assert "--secret-file" not in argv and "--shared-fallback" not in argv  # no shared password at all
    table_path = Path(option(argv, "--device-secrets") or "")
    assert stat.S_IMODE(table_path.stat().st_mode) == 0o600
    table = json.loads(table_path.read_text())
    # Every NVR the lab simulates (an enterprise in long-term shutdown is never rolled out nor simulated).
    simulated = [site.enterprise for site in build_plan(lab).sites.values()]
    want = {nvr.device_id: vault[sip_credential(ent.slug, nvr.name, True)]
            for ent in simulated for nvr in ent.devices.nvrs if nvr.gb28181}
    assert table == want and len(set(table.values())) == len(table) >= 6
    assert not any(value in " ".join(argv) for value in vault.values())


def test_with_one_password_for_the_province_the_registrar_gets_that_one(lab: Inventory, tmp_path: Path) -> None:
    assert lab.province is not None
    province = lab.province.model_copy(deep=True)
    province.platform.sip.per_device_passwords = False
    shared = dataclasses.replace(lab, province=province)
    vault = fake_vault(shared)
    argv = registrar_argv(shared, tmp_path, vault)
    assert "--device-secrets" not in argv
    secret = Path(option(argv, "--secret-file") or "")
    assert secret.read_text() == vault["vault_sip_password"] + "\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
