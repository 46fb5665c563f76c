"""hazmon.devices.gb28181 against the real NVR simulator and the real registrar, as processes on loopback.

What the nvr role's module does, end to end: read the NVR over ISAPI (digest auth), change what
differs, wait until the registrar lists the NVR registered, online and with every channel (V2).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazmon.devices import gb28181
from hazmon.devices.isapi import Isapi, IsapiError
from hazmon.devices.site import find_nvr
from hazmon.inventory.loader import Inventory
from hazmon.lab import tls
from hazmon.lab.sim.common import control
from hazmon.testing.procs import stop

from .conftest import VideoSims, start_video_sims

pytestmark = pytest.mark.integration

DEVICE = "51010000001186000001"
CHANNELS = {1: "51010000001326000001", 2: "51010000001326000002", 3: "51010000001316000003"}


def target(inv: Inventory, sims: VideoSims, **more: object) -> gb28181.Target:
    ent = inv.enterprise("labe0001")
    return gb28181.target(inv, ent, find_nvr(ent, "nvr1"), sims.overrides(**more))


def client(sims: VideoSims, password: str | None = None) -> Isapi:
    return Isapi(sims.nvr_url, "admin", password or sims.nvr_password, timeout=5, ca_file=sims.ca_file)


def sip_changes(sims: VideoSims) -> int:
    """How many times the NVR's access settings were PUT (the simulator logs each)."""
    return sims.nvr_log.read_text().count("GB/T 28181 access changed")


def test_configure_register_then_a_second_run_changes_nothing(lab_inventory: Inventory, video_sims: VideoSims) -> None:
    want = target(lab_inventory, video_sims)
    t0 = time.monotonic()
    first = gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20)
    took = time.monotonic() - t0
    assert first.error is None and first.changed and first.plan.send_password
    # The device holds what the model says...
    status = video_sims.nvr_status()
    assert status["sip"] == {"enabled": True, "registrar": "127.0.0.1", "registrar_port": video_sims.sip_port,
                             "server_id": "51000000002006000001", "server_domain": "5100000000",
                             "auth_id": DEVICE, "expires": 3600, "heartbeat_time": 1, "heartbeat_count": 3,
                             "local_port": video_sims.local_port}
    assert status["channel_ids"] == {str(k): v for k, v in CHANNELS.items()}
    # ...and the platform saw it register, online, with its catalog.
    reg = gb28181.read_registrar(video_sims.status_url)["devices"][DEVICE]
    assert reg["registered"] and reg["online"]
    assert {c["device_id"] for c in reg["channels"]} == set(CHANNELS.values())
    assert first.registration is not None and first.registration["registered"] and first.registration["online"]
    assert first.waited is not None and first.waited < 10 and took < 15
    assert sip_changes(video_sims) == 1

    second = gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20)
    assert second.error is None and not second.changed and not second.plan.send_password
    # One look at the registrar, no waiting (rounded to 10 ms, a loaded machine can show 0.01).
    assert second.plan.before == second.plan.after and second.waited is not None and second.waited < 0.5
    assert sip_changes(video_sims) == 1  # nothing was PUT


def test_check_mode_reports_and_changes_nothing(lab_inventory: Inventory, video_sims: VideoSims) -> None:
    want = target(lab_inventory, video_sims)
    out = gb28181.converge(client(video_sims), want, video_sims.sip_password, check=True)
    assert out.changed and "enabled: False -> True" in out.plan.reasons
    assert video_sims.nvr_status()["sip"]["enabled"] is False and video_sims.nvr_status()["channel_ids"] == {}
    assert out.registration == {}


def test_a_wrong_platform_password_fails_with_v2_and_the_registrars_reason(lab_inventory: Inventory,
                                                                          video_sims: VideoSims) -> None:
    want = target(lab_inventory, video_sims)
    bad = gb28181.converge(client(video_sims), want, "not-the-platforms", wait_timeout=4)
    assert bad.changed and bad.error is not None
    assert bad.error.startswith(f"V2: NVR nvr1 of 91510100MALABE0001 (GB/T 28181 device {DEVICE}) is not online")
    assert "403 wrong password" in bad.error
    assert "not-the-platforms" not in bad.error and video_sims.sip_password not in bad.error
    # The next run cannot prove the password (not registered), so it sends it again, and it works.
    good = gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20)
    assert good.error is None and good.changed and good.plan.access_changes == {}
    assert good.plan.send_password and good.registration["registered"]


def test_a_channel_id_edited_on_the_device_is_put_back_and_reaches_the_platform(lab_inventory: Inventory,
                                                                               video_sims: VideoSims) -> None:
    want = target(lab_inventory, video_sims)
    assert gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20).error is None
    wrong = "51010000001326000099"
    client(video_sims).put(gb28181.SIPINFO_PATH, gb28181.channel_ids_body({2: wrong}))
    out = gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20)
    assert out.error is None and out.plan.channel_changes == {2: CHANNELS[2]}
    assert video_sims.nvr_status()["channel_ids"]["2"] == CHANNELS[2]
    assert CHANNELS[2] in {c["device_id"] for c in out.registration["channels"]}


def test_disable_unregisters_once(lab_inventory: Inventory, video_sims: VideoSims) -> None:
    want = target(lab_inventory, video_sims)
    gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20)
    assert gb28181.disable(client(video_sims), check=True).changed
    assert video_sims.nvr_status()["sip"]["enabled"] is True  # check mode
    assert gb28181.disable(client(video_sims)).changed
    assert video_sims.nvr_status()["sip"]["enabled"] is False
    deadline = time.monotonic() + 10
    while gb28181.is_registered(gb28181.read_registrar(video_sims.status_url), DEVICE):
        assert time.monotonic() < deadline, "the NVR did not unregister after its access was disabled"
        time.sleep(0.2)
    assert not gb28181.disable(client(video_sims)).changed
    # The other settings stay: re-enabling is one field.
    again = gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20)
    assert again.plan.access_changes == {"enabled": True} and again.error is None


def test_isapi_errors_name_the_cause(video_sims: VideoSims) -> None:
    with pytest.raises(IsapiError, match=r"refused user 'admin' \(wrong password"):
        client(video_sims, password="wrong").get(gb28181.SIP_PATH)
    with pytest.raises(IsapiError, match=r"GET .*/ISAPI/Nothing: HTTP 404, notSupport"):
        client(video_sims).get("/ISAPI/Nothing")
    control(video_sims.nvr_control, {"cmd": "stop"})
    with pytest.raises(IsapiError, match="no answer from the device"):
        client(video_sims).get(gb28181.SIP_PATH)


# ---------------------------------------------------------------- N8: secure transmission


def test_https_is_verified_against_the_ca_file_and_a_wrong_ca_changes_nothing(
        lab_inventory: Inventory, video_sims: VideoSims, tmp_path: Path) -> None:
    want = target(lab_inventory, video_sims)
    other = tls.ensure_ca(tmp_path / "other-ca")
    untrusted = Isapi(video_sims.nvr_url, "admin", video_sims.nvr_password, timeout=5, ca_file=other.cert,
                      device="NVR nvr1 of 91510100MALABE0001")
    with pytest.raises(IsapiError) as refused:
        gb28181.converge(untrusted, want, video_sims.sip_password, wait_timeout=5)
    assert str(refused.value).startswith(f"NVR nvr1 of 91510100MALABE0001: GET {video_sims.nvr_url}/ISAPI/")
    assert f"failed verification against the CA bundle {other.cert}" in str(refused.value)
    assert sip_changes(video_sims) == 0 and video_sims.nvr_status()["sip"]["enabled"] is False
    # The right CA: the whole job over HTTPS.
    assert gb28181.converge(client(video_sims), want, video_sims.sip_password, wait_timeout=20).error is None


def test_a_plain_http_nvr_gets_no_password_without_the_opt_in(lab_inventory: Inventory,
                                                              video_sims: VideoSims) -> None:
    want = target(lab_inventory, video_sims)
    plain = Isapi(video_sims.http_url, "admin", video_sims.nvr_password, timeout=5,
                  device="NVR nvr1 of 91510100MALABE0001")
    for check in (True, False):  # check mode says so too: the real run would stop there
        with pytest.raises(IsapiError, match=r"^N8: NVR nvr1 of 91510100MALABE0001: refusing to send the "
                                             r"platform's SIP password .* over plain HTTP"):
            gb28181.converge(plain, want, video_sims.sip_password, check=check, wait_timeout=5)
    # Refused before the first PUT: not even the channel IDs went.
    assert sip_changes(video_sims) == 0
    assert video_sims.nvr_status()["sip"]["enabled"] is False and video_sims.nvr_status()["channel_ids"] == {}
    assert gb28181.read_device(plain).access["enabled"] is False  # reading over HTTP is fine
    # The named opt-in, for a device that has no HTTPS.
    opted = Isapi(video_sims.http_url, "admin", video_sims.nvr_password, timeout=5, insecure_secrets_over_http=True)
    out = gb28181.converge(opted, want, video_sims.sip_password, wait_timeout=20)
    assert out.error is None and out.plan.send_password and out.registration["registered"]
    assert gb28181.disable(plain).changed  # a PUT without a secret needs no opt-in (decommission)


@pytest.fixture
def per_device_sims(tmp_path: Path) -> Iterator[tuple[VideoSims, str]]:
    """The registrar keeps a password per device: this NVR's own, and another NVR's."""
    own = "own-" + secrets.token_hex(8)
    sims, procs = start_video_sims(tmp_path, {DEVICE: own, "51010000001186000999": "another-nvrs"})
    try:
        yield sims, own
    finally:
        for proc in reversed(procs):
            stop(proc)


def test_with_per_device_passwords_the_nvr_registers_with_its_own_only(
        lab_inventory: Inventory, per_device_sims: tuple[VideoSims, str]) -> None:
    sims, own = per_device_sims
    want = target(lab_inventory, sims)
    for wrong in (sims.sip_password, "another-nvrs"):  # the province's shared one, another NVR's
        out = gb28181.converge(client(sims), want, wrong, wait_timeout=3, force_password=True)
        assert out.error is not None and "403 wrong password" in out.error and "own" in out.error
    good = gb28181.converge(client(sims), want, own, wait_timeout=20)
    assert good.error is None and good.plan.send_password and good.registration["registered"]
