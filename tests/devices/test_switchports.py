"""Switch port reservation (N6): which ports, the plan, and a whole run against the simulator's CLI.

The simulator's command line (hazmon.lab.sim.switch_cli, the same code the SSH simulator runs)
stands in for netmiko's session, so the Huawei VRP and H3C Comware dialects are exercised here
without SSH; tests/devices/test_switch_sim.py does the same through real netmiko and SSH.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hazmon.devices import switchports as sp
from hazmon.devices.site import DeviceError
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Switch, SwitchPort
from hazmon.inventory.rules.network import n6_ports

from .conftest import cli_session


def switch(*ports: tuple[str, str | None], vlan: int = 100) -> Switch:
    return Switch(name="msw1", vendor="huawei", device_type="huawei", address="198.19.1.5", credential="c",
                  vlan=vlan, ports=[SwitchPort(name=n, connected=c) for n, c in ports])


# ---------------------------------------------------------------- which ports


def test_first_two_free_ports_in_inventory_order(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    got = sp.reservations(ent, ent.devices.switch)
    assert [(r.port, r.role, r.vlan) for r in got] == [
        ("GigabitEthernet0/0/3", "ai_box", 100), ("GigabitEthernet0/0/4", "nvr", 100)]
    assert [r.description for r in got] == ["hazmon:ai_box labe0001-aibox", "hazmon:nvr labe0001-nvr-nvr1"]


def test_a_port_marked_for_the_ai_box_is_kept_and_the_nvr_takes_the_first_free(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0002")  # 1/0/2 is marked connected: ai_box
    got = sp.reservations(ent, ent.devices.switch)
    assert [(r.port, r.role) for r in got] == [("GigabitEthernet1/0/2", "ai_box"), ("GigabitEthernet1/0/3", "nvr")]


def test_the_choice_is_the_n6_rules_own(lab_inventory: Inventory) -> None:
    # Whatever the rule counts as free is what gets reserved: the two cannot drift apart.
    for ent in lab_inventory.enterprises:
        sw = ent.devices.switch
        if sw is None:
            continue
        ports = n6_ports(sw)
        got = {r.role: r.port for r in sp.reservations(ent, sw)}
        allowed_ai = {p.name for p in ports.ai_box} or {p.name for p in ports.free}
        assert got["ai_box"] in allowed_ai
        assert got["nvr"] in ({p.name for p in ports.nvr} or {p.name for p in ports.free})
        assert got["ai_box"] != got["nvr"]


def test_a_port_marked_for_a_named_nvr_describes_that_nvr(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    sw = switch(("GE0/0/1", "uplink"), ("GE0/0/2", "nvr:nvr1"), ("GE0/0/3", None))
    got = sp.reservations(ent, sw)
    assert [(r.port, r.description) for r in got] == [
        ("GE0/0/3", "hazmon:ai_box labe0001-aibox"), ("GE0/0/2", "hazmon:nvr labe0001-nvr-nvr1")]


def test_vlan_a_ports_own_vlan_wins_then_the_option_then_the_switchs(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    sw = switch(("GE0/0/1", None), ("GE0/0/2", None), vlan=300)
    sw.ports[0].vlan = 42
    assert [r.vlan for r in sp.reservations(ent, sw)] == [42, 300]
    assert [r.vlan for r in sp.reservations(ent, sw, vlan=200)] == [42, 200]


def test_too_few_free_ports_fails_with_n6(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    with pytest.raises(DeviceError, match=r"^N6: switch msw1 .* no port for the nvr.*GE0/0/2=dcs"):
        sp.reservations(ent, switch(("GE0/0/1", None), ("GE0/0/2", "dcs")))


# ---------------------------------------------------------------- parsing the device's words


HUAWEI_CONFIG = """#
sysname msw1
#
vlan batch 100 200 to 202
#
interface GigabitEthernet0/0/3
 description hazmon:ai_box labe0001-aibox
 port link-type access
 port default vlan 100
#
interface GigabitEthernet0/0/4
 shutdown
#
return"""

COMWARE_CONFIG = """#
 sysname msw1
#
vlan 1
#
vlan 100
#
interface GigabitEthernet1/0/2
 port link-mode bridge
 description hazmon:nvr x
 port access vlan 100
#
return"""


def test_parse_huawei_running_config() -> None:
    cfg = sp.parse_config(HUAWEI_CONFIG, sp.HUAWEI)
    assert cfg.vlans == {1, 100, 200, 201, 202}
    assert cfg.ports["GigabitEthernet0/0/3"] == sp.PortConfig("GigabitEthernet0/0/3", "hazmon:ai_box labe0001-aibox",
                                                             "access", 100, False)
    assert cfg.ports["GigabitEthernet0/0/4"].shutdown


def test_parse_comware_running_config() -> None:
    cfg = sp.parse_config(COMWARE_CONFIG, sp.COMWARE)
    assert cfg.vlans == {1, 100}
    port = cfg.ports["GigabitEthernet1/0/2"]
    assert (port.description, port.link_type, port.vlan, port.ours) == ("hazmon:nvr x", None, 100, True)
    # Huawei's VLAN words mean nothing on Comware, and the reverse.
    assert sp.parse_config(COMWARE_CONFIG, sp.HUAWEI).ports["GigabitEthernet1/0/2"].vlan is None


@pytest.mark.parametrize("enterprise", ["labe0001", "labe0002"])
def test_link_state_from_each_dialects_brief_table(lab_inventory: Inventory, tmp_path: Path, enterprise: str) -> None:
    session = cli_session(lab_inventory, enterprise, tmp_path)
    d = sp.dialect(session.cli.state.switch.device_type)
    names = list(session.cli.state.ports)
    session.cli.state.change(names[-1], shutdown=True)
    links = sp.parse_links(session.send_command("display interface brief"), names, d)
    expected = {n: "up" if p.up else "down" for n, p in session.cli.state.ports.items()}
    expected[names[-1]] = "admin-down"
    assert links == expected
    assert "up" in links.values() and "down" in links.values()


# ---------------------------------------------------------------- plan and run


@pytest.mark.parametrize("enterprise,vlan_line", [("labe0001", " port default vlan 100"),
                                                   ("labe0002", " port access vlan 100")])
def test_run_reserves_saves_and_a_second_run_changes_nothing(lab_inventory: Inventory, tmp_path: Path,
                                                             enterprise: str, vlan_line: str) -> None:
    ent = lab_inventory.enterprise(enterprise)
    session = cli_session(lab_inventory, enterprise, tmp_path)
    d = sp.dialect(ent.devices.switch.device_type)
    wanted = sp.reservations(ent, ent.devices.switch)

    first = sp.run(session, d, wanted, check=False)
    assert first.changed and first.saved
    state = session.cli.state
    assert state.saved_at is not None and 100 in state.vlans
    for r in wanted:
        port = state.ports[r.port]
        assert (port.description, port.vlan, port.shutdown) == (r.description, 100, False)
        assert vlan_line in first.diff["after"]
    assert first.diff["before"] != first.diff["after"]

    saved_at = state.saved_at
    session.sent.clear()
    second = sp.run(session, d, wanted, check=False)
    assert not second.changed and not second.saved and second.commands == []
    assert state.saved_at == saved_at
    assert not any(c.startswith(("system-view", "save")) for c in session.sent)  # read-only
    assert second.diff["before"] == second.diff["after"]


def test_check_mode_reports_drift_and_changes_nothing(lab_inventory: Inventory, tmp_path: Path) -> None:
    ent = lab_inventory.enterprise("labe0001")
    session = cli_session(lab_inventory, "labe0001", tmp_path)
    wanted = sp.reservations(ent, ent.devices.switch)
    sp.run(session, sp.HUAWEI, wanted, check=False)
    # A technician edits the AI box's port by hand: another VLAN, and shuts it.
    session.cli.state.change("GigabitEthernet0/0/3", vlan=5, shutdown=True)
    check = sp.run(session, sp.HUAWEI, wanted, check=True)
    assert check.changed and not check.saved
    assert check.commands == ["interface GigabitEthernet0/0/3", "port default vlan 100", "undo shutdown", "quit"]
    assert " port default vlan 5\n shutdown" in check.diff["before"]
    assert session.cli.state.ports["GigabitEthernet0/0/3"].vlan == 5  # untouched in check mode
    fixed = sp.run(session, sp.HUAWEI, wanted, check=False)
    assert fixed.changed and session.cli.state.ports["GigabitEthernet0/0/3"].vlan == 100


def test_a_moved_reservation_releases_the_old_port(lab_inventory: Inventory, tmp_path: Path) -> None:
    ent = lab_inventory.enterprise("labe0001")
    session = cli_session(lab_inventory, "labe0001", tmp_path)
    sp.run(session, sp.HUAWEI, sp.reservations(ent, ent.devices.switch), check=False)  # AI box 0/0/3, NVR 0/0/4
    # The inventory now marks 0/0/2 for the AI box (the DCS moved away): the NVR takes the first free
    # port, 0/0/3, and 0/0/4 is given back.
    sw = ent.devices.switch.model_copy(deep=True)
    sw.ports[1].connected = "ai_box"
    result = sp.run(session, sp.HUAWEI, sp.reservations(ent, sw), check=False)
    assert result.released == ["GigabitEthernet0/0/4"]
    ports = session.cli.state.ports
    assert ports["GigabitEthernet0/0/2"].description == "hazmon:ai_box labe0001-aibox"
    assert ports["GigabitEthernet0/0/3"].description == "hazmon:nvr labe0001-nvr-nvr1"
    old = ports["GigabitEthernet0/0/4"]
    assert (old.description, old.vlan, old.link_type) == ("", 1, None)


@pytest.mark.parametrize("enterprise", ["labe0001", "labe0002"])
def test_release_gives_every_hazmon_port_back_and_leaves_others(lab_inventory: Inventory, tmp_path: Path,
                                                                enterprise: str) -> None:
    ent = lab_inventory.enterprise(enterprise)
    session = cli_session(lab_inventory, enterprise, tmp_path)
    d = sp.dialect(ent.devices.switch.device_type)
    uplink = ent.devices.switch.ports[0].name
    session.cli.state.change(uplink, description="to the city", vlan=7)
    sp.run(session, d, sp.reservations(ent, ent.devices.switch), check=False)
    released = sp.run(session, d, None, check=False)
    assert released.changed and released.saved and len(released.released) == 2
    for name, port in session.cli.state.ports.items():
        if name == uplink:
            assert (port.description, port.vlan) == ("to the city", 7)
        else:
            assert (port.description, port.vlan, port.link_type) == ("", 1, None)
    assert not sp.run(session, d, None, check=False).changed


def test_a_refused_command_stops_the_session_with_the_devices_words(lab_inventory: Inventory,
                                                                    tmp_path: Path) -> None:
    session = cli_session(lab_inventory, "labe0001", tmp_path)
    wanted = [sp.Reservation("GigabitEthernet0/0/3", "ai_box", "hazmon:ai_box x", 5000)]
    with pytest.raises(DeviceError, match=r"switch s refused 'vlan batch 5000': .*Error: Wrong parameter"):
        sp.run(session, sp.HUAWEI, wanted, check=False, switch_name="s")
    # Nothing after the refused command was sent, the session is back in user view, nothing saved.
    assert "interface GigabitEthernet0/0/3" not in session.sent
    assert session.cli.mode == "user" and session.cli.state.saved_at is None


def test_a_port_missing_on_the_device_fails_with_n6(lab_inventory: Inventory, tmp_path: Path) -> None:
    session = cli_session(lab_inventory, "labe0001", tmp_path)
    wanted = [sp.Reservation("GigabitEthernet0/0/9", "nvr", "hazmon:nvr x", 100)]
    with pytest.raises(DeviceError, match=r"N6: port GigabitEthernet0/0/9 \(for the nvr\) is not on the switch"):
        sp.run(session, sp.HUAWEI, wanted, check=True)


def test_unknown_device_type() -> None:
    with pytest.raises(DeviceError, match="cisco_ios"):
        sp.dialect("cisco_ios")


def test_verify_names_what_is_not_reserved(lab_inventory: Inventory, tmp_path: Path) -> None:
    ent = lab_inventory.enterprise("labe0002")
    session = cli_session(lab_inventory, "labe0002", tmp_path)
    wanted = sp.reservations(ent, ent.devices.switch)
    assert len(sp.verify(session, sp.COMWARE, wanted)) == 2
    sp.run(session, sp.COMWARE, wanted, check=False)
    assert sp.verify(session, sp.COMWARE, wanted) == []
    session.cli.state.change("GigabitEthernet1/0/3", vlan=1)
    assert sp.verify(session, sp.COMWARE, wanted) == [
        "port GigabitEthernet1/0/3 (nvr) is not reserved as the inventory says: missing ['port access vlan 100']"]
