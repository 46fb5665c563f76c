"""The monitoring-switch simulator driven by real netmiko over SSH, and its command line without SSH.

labe0001's switch is a Huawei (netmiko "huawei"), labe0004's an H3C (netmiko "hp_comware").
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException

from hazmon.inventory.model import Switch, SwitchPort
from hazmon.lab.sim.common import control, write_secret
from hazmon.lab.sim.switch_cli import DIALECTS, Cli
from hazmon.lab.sim.switch_state import SwitchState
from hazmon.testing.procs import free_port, stop, wait_port

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


@dataclass(frozen=True)
class Case:
    enterprise: str
    device_type: str
    free_port: str  # a port with nothing connected (down in the inventory's sense)
    used_port: str  # the uplink, connected (up)
    vlan_command: str
    config_vlan_line: str


HUAWEI = Case("labe0001", "huawei", "GigabitEthernet0/0/3", "GigabitEthernet0/0/1",
              "port default vlan 100", " port default vlan 100")
H3C = Case("labe0004", "hp_comware", "GigabitEthernet1/0/2", "GigabitEthernet1/0/1",
           "port access vlan 100", " port access vlan 100")


@dataclass
class Sim:
    port: int
    password: str
    state_dir: Path
    control: Path
    log: Path

    def connect(self, case: Case, password: str | None = None) -> ConnectHandler:
        return ConnectHandler(device_type=case.device_type, host="127.0.0.1", port=self.port,
                              username="admin", password=password or self.password, timeout=10,
                              auth_timeout=10, banner_timeout=10)


@pytest.fixture(params=[HUAWEI, H3C], ids=["huawei", "h3c"])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def sim(case: Case, tmp_path: Path) -> Iterator[Sim]:
    password, port = secrets.token_hex(8), free_port()
    log, ctl = tmp_path / "switch.log", tmp_path / "switch.sock"
    proc = subprocess.Popen([sys.executable, "-m", "hazmon.lab.sim.switch", "--inventory", str(LAB),
                             "--enterprise", case.enterprise, "--bind", "127.0.0.1", "--port", str(port),
                             "--secret-file", str(write_secret(tmp_path / "switch.secret", password)),
                             "--state-dir", str(tmp_path / "state"), "--control", str(ctl)],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        try:
            wait_port("127.0.0.1", port, timeout=15)
        except TimeoutError:
            raise AssertionError(log.read_text()) from None
        yield Sim(port, password, tmp_path / "state", ctl, log)
    finally:
        stop(proc)


def brief_row(output: str, port: str) -> list[str]:
    short = port.replace("GigabitEthernet", "GE")
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] in (port, short):
            return cells
    raise AssertionError(f"{port} not in display interface brief:\n{output}")


def test_netmiko_configures_a_port_and_a_second_session_sees_it(case: Case, sim: Sim) -> None:
    conn = sim.connect(case)
    try:
        assert conn.find_prompt() == "<msw1>"
        brief = conn.send_command("display interface brief")
        assert brief_row(brief, case.used_port)[1].lower() == "up"  # connected in the inventory
        assert brief_row(brief, case.free_port)[1].lower() == "down"  # nothing connected
        out = conn.send_config_set([f"interface {case.free_port}", "description hazmon ai-box",
                                    "port link-type access", case.vlan_command, "shutdown"])
        assert "Error" not in out and "%" not in out, out
        config = conn.send_command(f"display current-configuration interface {case.free_port}")
        lines = config.splitlines()
        assert f"interface {case.free_port}" in lines
        assert " description hazmon ai-box" in lines
        assert case.config_vlan_line in lines
        assert " shutdown" in lines
        assert "successfully" in conn.save_config()
    finally:
        conn.disconnect()

    again = sim.connect(case)
    try:
        config = again.send_command(f"display current-configuration interface {case.free_port}")
        assert " description hazmon ai-box" in config.splitlines()
        row = brief_row(again.send_command("display interface brief"), case.free_port)
        assert row[1] in ("*down", "ADM")  # administratively down, in each vendor's words
    finally:
        again.disconnect()

    state = control(sim.control, {"cmd": "state"})
    port = state["ports"][case.free_port]
    assert (port["description"], port["vlan"], port["shutdown"]) == ("hazmon ai-box", 100, True)
    assert state["saved_at"] is not None and state["sessions"] == 2
    on_disk = json.loads(next(sim.state_dir.glob("switch-*.json")).read_text())
    assert on_disk["ports"][case.free_port]["description"] == "hazmon ai-box"
    assert sim.password not in sim.log.read_text()


@pytest.mark.parametrize("case", [HUAWEI], ids=["huawei"], indirect=True)
def test_wrong_password_is_refused(case: Case, sim: Sim) -> None:
    with pytest.raises(NetmikoAuthenticationException):
        sim.connect(case, password="wrong-password")


@pytest.mark.parametrize("case", [HUAWEI], ids=["huawei"], indirect=True)
def test_pulled_cable_and_stopped_switch(case: Case, sim: Sim) -> None:
    assert control(sim.control, {"cmd": "link", "port": case.used_port, "up": False})["up"] is False
    conn = sim.connect(case)
    try:
        assert brief_row(conn.send_command("display interface brief"), case.used_port)[1] == "down"
    finally:
        conn.disconnect()
    control(sim.control, {"cmd": "stop"})
    with pytest.raises(Exception):  # noqa: B017 - netmiko wraps the refused session in several types
        sim.connect(case)


# ---------------------------------------------------------------- the CLI without SSH


def cli(vendor: str, tmp_path: Path) -> Cli:
    switch = Switch(name="msw1", vendor=vendor, device_type="huawei" if vendor == "huawei" else "hp_comware",
                    address="198.19.1.5", credential="vault_x",
                    ports=[SwitchPort(name="GigabitEthernet0/0/1", connected="uplink"),
                           SwitchPort(name="GigabitEthernet0/0/2")])
    return Cli(SwitchState.load(switch, tmp_path / "s.json"), DIALECTS[vendor])


def test_cli_views_prompts_and_abbreviations(tmp_path: Path) -> None:
    c = cli("huawei", tmp_path)
    assert c.prompt == "<msw1>"
    assert c.handle("sys") == ["Enter system view, return user view with Ctrl+Z."]
    assert c.prompt == "[msw1]"
    assert c.handle("int GE0/0/2") == [] and c.prompt == "[msw1-GigabitEthernet0/0/2]"
    c.handle("desc to the AI box")
    c.handle("port default vlan 200")
    c.handle("quit")
    assert c.prompt == "[msw1]"
    c.handle("return")
    assert c.prompt == "<msw1>"
    out = c.handle("dis cur int GigabitEthernet 0/0/2")
    assert out == ["#", "interface GigabitEthernet0/0/2", " description to the AI box",
                   " port default vlan 200", "#", "return"]
    assert 200 in c.state.vlans


def test_cli_errors_point_at_the_offending_word(tmp_path: Path) -> None:
    c = cli("huawei", tmp_path)
    assert c.handle("dispaly version") == ["      ^", "Error: Unrecognized command found at '^' position."]
    c.handle("system-view")
    assert c.handle("interface GigabitEthernet9/9/9")[-1] == "Error: Wrong parameter found at '^' position."
    assert c.prompt == "[msw1]"


def test_h3c_uses_its_own_vlan_syntax(tmp_path: Path) -> None:
    c = cli("h3c", tmp_path)
    c.handle("system-view")
    c.handle("interface GigabitEthernet0/0/2")
    assert c.handle("port default vlan 100")[-1] == " % Unrecognized command found at '^' position."
    assert c.handle("port access vlan 100") == []
    assert c.state.ports["GigabitEthernet0/0/2"].vlan == 100
    assert c.handle("display this")[1:4] == ["interface GigabitEthernet0/0/2", " port link-mode bridge",
                                            " port access vlan 100"]


def test_save_asks_before_writing(tmp_path: Path) -> None:
    c = cli("huawei", tmp_path)
    assert "Continue? [Y/N]:" in c.handle("save")[0]
    assert c.prompt == ""  # the answer is awaited on the question's line
    assert c.handle("n") == ["Info: Cancelled."] and c.state.saved_at is None
    c.handle("save")
    assert c.handle("y")[-1] == "Info: Save the configuration successfully."
    assert c.state.saved_at is not None


def test_state_file_restores_a_restarted_switch(tmp_path: Path) -> None:
    c = cli("huawei", tmp_path)
    c.handle("system-view")
    c.handle("interface GigabitEthernet0/0/1")
    c.handle("shutdown")
    again = cli("huawei", tmp_path)
    assert again.state.ports["GigabitEthernet0/0/1"].shutdown is True
    assert again.state.ports["GigabitEthernet0/0/1"].up is False
