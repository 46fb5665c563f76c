"""The AI box's analytics document: the one table, per-location analyses, overrides, the verify check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hazmon.devices import analytics
from hazmon.devices.site import DeviceError
from hazmon.inventory import notice
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import LocationKind

from .conftest import LAB


def test_every_location_kind_has_an_entry_and_every_algorithm_exists() -> None:
    assert set(analytics.LOCATION_ANALYTICS) == set(LocationKind)
    for rule, names in analytics.LOCATION_ANALYTICS.values():
        assert rule in ("V4", "V5", "S4")
        assert set(names) <= set(analytics.ALGORITHMS)


def test_every_v4_place_gets_an_analysis() -> None:
    # V4: AI video analysis and warning on every fireworks place the notice names.
    for kind in notice.FIREWORKS_LOCATIONS:
        rule, names = analytics.LOCATION_ANALYTICS[LocationKind(kind)]
        assert rule == "V4" and names


def test_fireworks_plant(lab_inventory: Inventory) -> None:
    doc = analytics.render(lab_inventory.enterprise("labe0005"))
    by_cam = analytics.summary(doc)
    assert by_cam == {"cam-ws": ["head_count_limit", "smoke_fire"],
                      "cam-wh": ["intrusion", "head_count_limit", "smoke_fire"],
                      "cam-dry": ["entrance_count", "smoke_fire"]}
    ws = doc["cameras"][0]
    assert (ws["location"], ws["covers"], ws["rule"]) == ("fw_workshop_1_1", "1号1.1级工房", "V4")
    assert ws["analytics"][0]["params"]["max_persons"] == 2
    assert ws["channel_id"] == "51050000001326000005"
    assert ws["rtsp"] == "rtsp://198.19.5.10:554/Streaming/Channels/101"
    assert doc["ai_box"] == {"host": "labe0005-aibox", "address": "198.19.5.4", "serial": "AIB-LAB-0005"}


def test_major_hazard_plant(lab_inventory: Inventory) -> None:
    doc = analytics.render(lab_inventory.enterprise("labe0001"))
    assert analytics.summary(doc) == {"cam-duty": ["duty_absence"], "cam-tank": ["intrusion", "smoke_fire"],
                                      "cam-unit": ["smoke_fire", "no_helmet"]}
    assert {c["rule"] for c in doc["cameras"]} == {"V5"}
    assert doc["cameras"][1]["nvr"] == {"name": "nvr1", "vendor": "hikvision", "address": "198.19.1.10",
                                        "device_id": "51010000001186000001"}


def test_dahua_stream_and_a_camera_without_analysis(lab_inventory: Inventory) -> None:
    doc = analytics.render(lab_inventory.enterprise("labe0006"))  # Dahua NVR, a dam camera (other)
    cam = doc["cameras"][0]
    assert cam["rtsp"] == "rtsp://198.19.6.10:554/cam/realmonitor?channel=1&subtype=0"
    assert (cam["rule"], cam["analytics"]) == ("S4", [])


def test_overrides_change_only_what_they_name(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0005")
    doc = analytics.render(ent, {"cam-ws": {"head_count_limit": {"max_persons": 4}}})
    assert doc["cameras"][0]["analytics"][0]["params"] == {"max_persons": 4, "hold_s": 10}
    assert doc["cameras"][1]["analytics"][1]["params"]["max_persons"] == 2
    # The table itself is untouched (defaults are copied, not shared).
    assert analytics.ALGORITHMS["head_count_limit"].params["max_persons"] == 2


@pytest.mark.parametrize("overrides,message", [
    ({"cam-nope": {}}, r"no camera \['cam-nope'\]"),
    ({"cam-ws": {"intrusion": {}}}, r"\['intrusion'\] do not run at a fw_workshop_1_1 camera"),
    ({"cam-ws": {"head_count_limit": {"max_people": 3}}}, r"unknown parameter\(s\) \['max_people'\]"),
])
def test_bad_overrides_fail(lab_inventory: Inventory, overrides: dict, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        analytics.render(lab_inventory.enterprise("labe0005"), overrides)


def test_no_ai_box_is_n4(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001").model_copy(deep=True)
    ent.devices.ai_box = None
    with pytest.raises(DeviceError, match=r"^N4: "):
        analytics.render(ent)


def test_the_text_is_stable_and_the_check_sees_edits(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    text = analytics.dumps(analytics.render(ent))
    assert text == analytics.dumps(analytics.render(ent)) and text.endswith("}\n")
    assert analytics.check(text, ent) == []
    edited = json.loads(text)
    edited["cameras"][0]["analytics"] = []
    assert analytics.check(json.dumps(edited), ent) == ["camera cam-duty: differs"]
    assert analytics.check(text.replace("  ", "    "), ent) == ["same content, different formatting"]
    assert analytics.check("{", ent)[0].startswith("not JSON")
    edited = json.loads(text)
    edited["cameras"].append({"name": "cam-extra"})
    assert "camera cam-extra: not in the inventory" in analytics.check(json.dumps(edited), ent)


def test_cli_prints_the_file_and_checks_one(lab_inventory: Inventory, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert analytics.main(["--inventory", str(LAB), "--enterprise", "labe0005"]) == 0
    printed = capsys.readouterr().out
    assert printed == analytics.dumps(analytics.render(lab_inventory.enterprise("labe0005")))
    installed = tmp_path / "analytics.json"
    installed.write_text(printed, encoding="utf-8")
    assert analytics.main(["--inventory", str(LAB), "--enterprise", "labe0005", "--check", str(installed)]) == 0
    installed.write_text(printed.replace('"max_persons": 2', '"max_persons": 9'), encoding="utf-8")
    assert analytics.main(["--inventory", str(LAB), "--enterprise", "labe0005", "--check", str(installed)]) == 1
    assert "camera cam-ws: differs" in capsys.readouterr().out
