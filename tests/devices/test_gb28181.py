"""GB/T 28181 platform access (V2): what the model asks, the plan, the XML, the registrar's verdict.

The XML both ways goes through the NVR simulator's own ISAPI code (what it answers on GET, what it
accepts on PUT), so the client and the device cannot disagree unnoticed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hazmon.devices import gb28181
from hazmon.devices.site import DeviceError, find_nvr
from hazmon.inventory.loader import Inventory
from hazmon.lab.sim import nvr_isapi
from hazmon.lab.sim.nvr_state import NvrState, SipConfig

DEVICE = "51010000001186000001"
CHANNELS = {1: "51010000001326000001", 2: "51010000001326000002", 3: "51010000001316000003"}


@pytest.fixture
def want(lab_inventory: Inventory) -> gb28181.Target:
    ent = lab_inventory.enterprise("labe0001")
    return gb28181.target(lab_inventory, ent, find_nvr(ent, "nvr1"))


def test_target_from_the_model(want: gb28181.Target) -> None:
    assert want.access == gb28181.Access(enabled=True, registrar="198.18.0.11", registrar_port=5060,
                                         server_id="51000000002006000001", server_domain="5100000000",
                                         auth_id=DEVICE)
    assert want.channel_ids == CHANNELS
    assert want.status_url == "http://198.18.0.11:8080/registrations.json"


def test_options_override_the_model(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    got = gb28181.target(lab_inventory, ent, find_nvr(ent, "nvr1"),
                         {"registrar": "127.0.0.1", "registrar_port": 15060, "heartbeat_time": 5, "expires": None,
                          "status_url": "", "address": "127.0.0.1:8080"})
    assert (got.access.registrar, got.access.registrar_port, got.access.heartbeat_time) == ("127.0.0.1", 15060, 5)
    assert got.access.expires == 3600  # None means "not given", not "null"
    assert got.address == "127.0.0.1:8080"


def test_v2_refuses_an_nvr_without_gb28181(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    nvr = find_nvr(ent, "nvr1").model_copy(update={"gb28181": False})
    with pytest.raises(DeviceError, match=r"^V2: NVR nvr1 of 91510100MALABE0001 .* does not support GB/T 28181"):
        gb28181.target(lab_inventory, ent, nvr)


def test_an_nvr_without_device_id_is_refused(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    nvr = find_nvr(ent, "nvr1").model_copy(update={"device_id": None})
    with pytest.raises(DeviceError, match=r"^GB28181: NVR nvr1 .* has no device_id"):
        gb28181.target(lab_inventory, ent, nvr)


# ---------------------------------------------------------------- XML, through the simulator's ISAPI code


def sim_state(lab_inventory: Inventory, tmp: Path) -> NvrState:
    ent = lab_inventory.enterprise("labe0001")
    return NvrState.load(ent, find_nvr(ent, "nvr1"), tmp / "nvr.json")


def test_parse_what_a_factory_nvr_answers(lab_inventory: Inventory, tmp_path: Path) -> None:
    state = sim_state(lab_inventory, tmp_path)
    access = gb28181.parse_access(ET.fromstring(nvr_isapi.sip_config(state.sip)))
    assert access == {"enabled": False, "registrar": "", "registrar_port": 5060, "server_id": "34020000002000000001",
                      "server_domain": "3402000000", "auth_id": "34020000001180000001", "expires": 3600,
                      "heartbeat_time": 60, "heartbeat_count": 3, "local_port": 5060}
    assert gb28181.parse_channel_ids(ET.fromstring(nvr_isapi.sip_info(state))) == {}


def test_the_put_bodies_are_what_the_device_accepts(lab_inventory: Inventory, tmp_path: Path,
                                                    want: gb28181.Target) -> None:
    state = sim_state(lab_inventory, tmp_path)
    doc = ET.fromstring(nvr_isapi.sip_config(state.sip))
    body = gb28181.access_body(doc, want.access, "s3cret")
    changes = nvr_isapi.parse_sip_config(ET.tostring(body))
    state.update_sip(changes)
    assert state.sip == SipConfig(enabled=True, registrar="198.18.0.11", registrar_port=5060,
                                  server_id="51000000002006000001", server_domain="5100000000", auth_id=DEVICE,
                                  password="s3cret")
    # Without a password the device keeps the one it has (even when its document carried one).
    with_password = gb28181.access_body(doc, want.access, "s3cret")
    again = nvr_isapi.parse_sip_config(ET.tostring(gb28181.access_body(with_password, want.access, None)))
    assert "password" not in again
    state.set_channel_ids(nvr_isapi.parse_sip_info(ET.tostring(gb28181.channel_ids_body(CHANNELS)), 16))
    assert gb28181.parse_channel_ids(ET.fromstring(nvr_isapi.sip_info(state))) == CHANNELS
    # And what the device answers now is exactly what was asked: nothing left to change.
    now = gb28181.parse_access(ET.fromstring(nvr_isapi.sip_config(state.sip)))
    assert not gb28181.plan_present(now, CHANNELS, want, password_proven=True).changed


# ---------------------------------------------------------------- the plan


def done(want: gb28181.Target) -> dict:
    from dataclasses import asdict
    return asdict(want.access)


def test_a_factory_nvr_gets_everything_and_the_password(want: gb28181.Target) -> None:
    plan = gb28181.plan_present({"enabled": False, "registrar": ""}, {}, want, password_proven=False)
    assert plan.changed and plan.put_access and plan.send_password
    assert plan.channel_changes == CHANNELS
    assert "enabled: False -> True" in plan.reasons
    assert plan.after["gb28181"]["password"] == gb28181.PASSWORD_SENT


def test_a_configured_registered_nvr_is_left_alone(want: gb28181.Target) -> None:
    plan = gb28181.plan_present(done(want), CHANNELS, want, password_proven=True)
    assert not plan.changed and not plan.send_password and plan.reasons == []
    assert plan.before == plan.after


def test_an_unregistered_nvr_gets_its_password_again(want: gb28181.Target) -> None:
    plan = gb28181.plan_present(done(want), CHANNELS, want, password_proven=False)
    assert plan.changed and plan.send_password and plan.access_changes == {}
    assert plan.reasons == ["password: the platform does not list the device as registered, so the device may "
                            "hold a wrong one"]
    assert plan.before["gb28181"]["password"] != plan.after["gb28181"]["password"]


def test_without_a_registrar_to_ask_the_password_goes_only_with_other_changes(want: gb28181.Target) -> None:
    assert not gb28181.plan_present(done(want), CHANNELS, want, password_proven=None).changed
    assert gb28181.plan_present(done(want), CHANNELS, want, password_proven=None, force_password=True).send_password
    moved = {**done(want), "registrar": "198.18.0.99"}
    plan = gb28181.plan_present(moved, CHANNELS, want, password_proven=None)
    assert plan.send_password and plan.access_changes == {"registrar": "198.18.0.11"}


def test_a_channel_id_change_also_re_registers(want: gb28181.Target) -> None:
    plan = gb28181.plan_present(done(want), {**CHANNELS, 2: "51010000001326000099"}, want, password_proven=True)
    assert plan.channel_changes == {2: CHANNELS[2]} and plan.put_access


def test_the_password_never_shows(want: gb28181.Target) -> None:
    plan = gb28181.plan_present({}, {}, want, password_proven=False)
    text = repr(plan.diff()) + repr(plan.reasons)
    assert "s3cret" not in text and set(plan.after["gb28181"]) == {*gb28181.ISAPI_NAMES, "password"}


def test_absent_disables_once(want: gb28181.Target) -> None:
    plan = gb28181.plan_absent(done(want), CHANNELS)
    assert plan.changed and plan.access_changes == {"enabled": False}
    assert not gb28181.plan_absent({**done(want), "enabled": False}, CHANNELS).changed


# ---------------------------------------------------------------- the registrar's verdict


def record(**over: object) -> dict:
    base = {"registered": True, "online": True, "registered_at": 1000.0, "unregistered_at": None,
            "last_keepalive": None, "channels": [{"device_id": i} for i in CHANNELS.values()]}
    return {**base, **over}


def status(rec: dict | None, rejections: list[dict] | None = None) -> dict:
    return {"devices": {DEVICE: rec} if rec else {}, "rejections": rejections or [], "updated_at": 2000.0}


@pytest.mark.parametrize("rec,since,expected", [
    (record(), None, None),
    (record(), 999.0, None),
    (None, None, "never heard from it"),
    (record(registered_at=999.0), 999.0, "still shows its registration from before the change"),
    (record(registered=False, unregistered_at=1500.0), None, "it unregistered at"),
    (record(registered=False), None, "expired"),
    (record(online=False), None, "is offline"),
    (record(channels=[{"device_id": CHANNELS[1]}]), None, f"lacks channel ID(s) {CHANNELS[3]}, {CHANNELS[2]}"),
])
def test_registration_problem(rec: dict | None, since: float | None, expected: str | None) -> None:
    got = gb28181.registration_problem(status(rec), DEVICE, CHANNELS, since)
    assert got is None if expected is None else expected in (got or "")


def test_a_rejection_since_the_change_is_named_first() -> None:
    old = {"device_id": DEVICE, "time": 1900.0, "status": 403, "reason": "old", "address": "a"}
    new = {"device_id": DEVICE, "time": 2100.0, "status": 403, "reason": "wrong password",
           "address": "198.19.1.10:5060"}
    other = {**new, "device_id": "51010000001186000099"}
    got = gb28181.registration_problem(status(None, [old, new, other]), DEVICE, CHANNELS, None, seen_at=2000.0)
    assert got is not None and got.startswith("the registrar refused it (1 time(s),")
    assert "198.19.1.10:5060): 403 wrong password; the registrar has never heard" in got
    assert "old" not in got


def test_wait_gives_up_with_v2_the_device_and_what_the_registrar_saw(monkeypatch: pytest.MonkeyPatch,
                                                                     want: gb28181.Target) -> None:
    answers = iter([status(None), status(record(online=False, registered_at=3000.0))] * 10)
    monkeypatch.setattr(gb28181, "read_registrar", lambda url, timeout=5.0: next(answers))
    now = [0.0]
    with pytest.raises(DeviceError) as err:
        gb28181.wait_registered("http://x", want, since=None, seen_at=None, timeout=3, poll=1,
                                clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    message = str(err.value)
    assert message.startswith(f"V2: NVR nvr1 of 91510100MALABE0001 (GB/T 28181 device {DEVICE}) is not online at "
                              "the platform's registrar 198.18.0.11:5060 after 3 s: ")
    assert "is offline" in message


def test_wait_returns_the_record_once_all_is_well(monkeypatch: pytest.MonkeyPatch, want: gb28181.Target) -> None:
    answers = iter([status(record(registered_at=10.0)), status(record(registered_at=20.0))])
    monkeypatch.setattr(gb28181, "read_registrar", lambda url, timeout=5.0: next(answers))
    now = [0.0]
    got = gb28181.wait_registered("http://x", want, since=10.0, seen_at=None, timeout=30, poll=1,
                                  clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert got.record["registered_at"] == 20.0 and got.waited == 1.0


def test_an_unreadable_registrar_is_named(want: gb28181.Target) -> None:
    with pytest.raises(DeviceError, match=r"cannot read the registrar's status at http://127.0.0.1:9/"):
        gb28181.read_registrar("http://127.0.0.1:9/registrations.json", timeout=1)
