"""hazmon.devices.switchports through real netmiko and SSH against the switch simulator on loopback.

labe0001's switch is a Huawei (netmiko `huawei`, `port default vlan`), labe0002's an H3C (netmiko
`hp_comware`, `port access vlan`), whose port 1/0/2 the inventory marks as the AI box's (link up).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazmon.devices import switchports as sp
from hazmon.devices.site import DeviceError
from hazmon.inventory.loader import Inventory
from hazmon.lab.sim.common import control
from hazmon.testing.procs import stop

from .conftest import SwitchSim, start_switch

pytestmark = pytest.mark.integration


@pytest.fixture(params=["labe0001", "labe0002"], ids=["huawei", "h3c"])
def sim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SwitchSim]:
    switch, proc = start_switch(tmp_path, request.param)
    try:
        yield switch
    finally:
        stop(proc)


def reserve(inv: Inventory, sim: SwitchSim, check: bool = False, release: bool = False) -> sp.Result:
    ent = inv.enterprise(sim.enterprise)
    sw = ent.devices.switch
    session = sp.connect(sw.device_type, "127.0.0.1", "admin", sim.password, port=sim.port, timeout=10)
    try:
        wanted = None if release else sp.reservations(ent, sw)
        return sp.run(session, sp.dialect(sw.device_type), wanted, check=check, switch_name=sw.name)
    finally:
        sp.close(session)


def test_reserve_save_then_nothing_to_do(lab_inventory: Inventory, sim: SwitchSim) -> None:
    t0 = time.monotonic()
    first = reserve(lab_inventory, sim)
    took = time.monotonic() - t0
    assert first.changed and first.saved
    state = sim.state()
    assert state["saved_at"] is not None and 100 in state["vlans"]
    ports = {p["role"]: p["port"] for p in first.ports}
    for role, name in ports.items():
        got = state["ports"][name]
        assert got["description"] == f"hazmon:{role} {sim.enterprise}-{'aibox' if role == 'ai_box' else 'nvr-nvr1'}"
        assert (got["vlan"], got["shutdown"]) == (100, False)
    # netmiko's own send_config_set and disconnect would wait 2 s of silence four times (8 s);
    # waiting for the prompt instead keeps a change well under that.
    assert took < 6, f"a reservation took {took:.1f} s"

    saved_at = state["saved_at"]
    second = reserve(lab_inventory, sim)
    assert not second.changed and not second.saved and second.commands == []
    assert sim.state()["saved_at"] == saved_at


def test_link_state_is_reported_and_a_pulled_cable_is_a_warning(lab_inventory: Inventory, sim: SwitchSim) -> None:
    result = reserve(lab_inventory, sim)
    links = {p["port"]: p["link"] for p in result.ports}
    state = sim.state()["ports"]
    assert links == {name: "up" if state[name]["up"] else "down" for name in links}
    assert len(result.warnings) == sum(1 for v in links.values() if v != "up")
    if sim.enterprise == "labe0002":  # the AI box is plugged into 1/0/2
        assert links["GigabitEthernet1/0/2"] == "up"
        control(sim.control, {"cmd": "link", "port": "GigabitEthernet1/0/2", "up": False})
        pulled = reserve(lab_inventory, sim)
        assert not pulled.changed
        assert any("GigabitEthernet1/0/2, reserved for the ai box, has link down" in w for w in pulled.warnings)


def test_drift_is_seen_in_check_mode_and_put_back(lab_inventory: Inventory, sim: SwitchSim) -> None:
    first = reserve(lab_inventory, sim)
    port = first.ports[0]["port"]
    ent = lab_inventory.enterprise(sim.enterprise)
    # A technician re-describes the port by hand in another SSH session, and shuts it.
    device_type = ent.devices.switch.device_type
    conn = sp.connect(device_type, "127.0.0.1", "admin", sim.password, port=sim.port, timeout=10)
    try:
        sp.configure(conn, [f"interface {port}", "description spare", "shutdown", "quit"], sp.dialect(device_type))
    finally:
        sp.close(conn)
    check = reserve(lab_inventory, sim, check=True)
    assert check.changed and not check.saved
    assert f"interface {port}\n description spare\n" in check.diff["before"]
    assert "undo shutdown" in check.commands
    assert sim.state()["ports"][port]["description"] == "spare"  # untouched
    fixed = reserve(lab_inventory, sim)
    assert fixed.changed and fixed.saved
    assert sim.state()["ports"][port]["description"].startswith("hazmon:")
    assert not sim.state()["ports"][port]["shutdown"]


def test_release_frees_the_ports(lab_inventory: Inventory, sim: SwitchSim) -> None:
    reserve(lab_inventory, sim)
    released = reserve(lab_inventory, sim, release=True)
    assert released.changed and released.saved and len(released.released) == 2
    for port in sim.state()["ports"].values():
        assert (port["description"], port["vlan"], port["link_type"]) == ("", 1, None)
    assert not reserve(lab_inventory, sim, release=True).changed


def test_wrong_password_is_named(lab_inventory: Inventory, sim: SwitchSim) -> None:
    with pytest.raises(DeviceError, match=r"switch 127.0.0.1:\d+: the device refused user 'admin'"):
        sp.connect("huawei", "127.0.0.1", "admin", "wrong", port=sim.port, timeout=10)
