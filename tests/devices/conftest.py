"""Shared helpers for the device tests: the lab inventory, and the switch simulator's CLI as a session."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hazmon.inventory.loader import Inventory
from hazmon.inventory.validate import load_valid
from hazmon.lab import tls
from hazmon.lab.sim.common import control, write_secret
from hazmon.lab.sim.switch_cli import DIALECTS, Cli
from hazmon.lab.sim.switch_state import SwitchState
from hazmon.testing.procs import free_port, stop, wait_port

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


@pytest.fixture(scope="session")
def lab_inventory() -> Inventory:
    inv, _ = load_valid(LAB)
    return inv


@dataclass
class CliSession:
    """The switch simulator's command line (no SSH) behind the subset of netmiko hazmon uses."""

    cli: Cli
    sent: list[str] = field(default_factory=list)
    base_prompt: str = ""
    RETURN: str = "\n"

    def __post_init__(self) -> None:
        self.base_prompt = self.cli.name

    def send_command(self, command_string: str, **_: Any) -> str:
        self.sent.append(command_string)
        return "\n".join([*self.cli.handle(command_string), self.cli.prompt])

    def save_config(self) -> str:
        first = self.send_command("save force" if self.cli.dialect.vendor == "h3c" else "save")
        return first + "\n" + ("" if self.cli.dialect.vendor == "h3c" else self.send_command("y"))

    def write_channel(self, out_data: str) -> None:
        self.cli.handle(out_data.strip())

    def paramiko_cleanup(self) -> None:
        pass


def cli_session(inv: Inventory, enterprise: str, tmp: Path) -> CliSession:
    ent = inv.enterprise(enterprise)
    assert ent is not None and ent.devices.switch is not None
    sw = ent.devices.switch
    state = SwitchState.load(sw, tmp / f"switch-{ent.slug}.json")
    return CliSession(Cli(state, DIALECTS[sw.vendor]))


# ---------------------------------------------------------------- the real simulators on loopback


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp: Path, name: str, args: list[str]) -> subprocess.Popen:
    """A simulator as its own process, as the lab runs it (stderr kept for failure messages)."""
    return subprocess.Popen([sys.executable, "-m", f"hazmon.lab.sim.{name}", "--inventory", str(LAB),
                             "--bind", "127.0.0.1", *args], stdout=subprocess.DEVNULL,
                            stderr=(tmp / f"{name}.log").open("w"))


def _ready(tmp: Path, name: str, proc: subprocess.Popen, port: int) -> None:
    try:
        wait_port("127.0.0.1", port, timeout=20)
    except TimeoutError:
        stop(proc)
        raise AssertionError((tmp / f"{name}.log").read_text()) from None


@dataclass
class VideoSims:
    """The lab's NVR (labe0001 nvr1) and the platform's registrar, on 127.0.0.1 free ports.

    The NVR serves ISAPI over HTTPS (nvr_url) with a certificate for 127.0.0.1 signed by this test's
    CA (ca_file), and over plain HTTP (http_url), as a Hikvision NVR does on 443 and 80."""

    tmp: Path
    nvr_url: str
    http_url: str
    ca_file: Path
    nvr_password: str
    nvr_control: Path
    nvr_log: Path
    sip_port: int
    sip_password: str
    status_url: str
    local_port: int

    def overrides(self, **more: Any) -> dict[str, Any]:
        """Target overrides pointing the model's NVR at these simulators."""
        return {"registrar": "127.0.0.1", "registrar_port": self.sip_port, "local_port": self.local_port,
                "heartbeat_time": 1, "status_url": self.status_url, **more}

    def nvr_status(self) -> dict[str, Any]:
        return control(self.nvr_control, {"cmd": "status"})


def start_video_sims(tmp_path: Path, device_secrets: dict[str, str] | None = None
                     ) -> tuple[VideoSims, list[subprocess.Popen]]:
    """The NVR and the registrar; with device_secrets, the registrar keeps a password per device
    (that table, no shared password) and sip_password is not accepted from any device in it."""
    sip_password, nvr_password = secrets.token_hex(8), secrets.token_hex(8)
    sip_port, reg_http, nvr_http, nvr_https = _free_udp_port(), free_port(), free_port(), free_port()
    ca = tls.ensure_ca(tmp_path / "ca", name="hazmon test CA")
    cert = tls.issue(ca, "127.0.0.1", tmp_path / "nvr.crt", tmp_path / "nvr.key")
    if device_secrets is None:
        reg_secrets = ["--secret-file", str(write_secret(tmp_path / "sip.secret", sip_password))]
    else:
        reg_secrets = ["--device-secrets", str(write_secret(tmp_path / "sip-devices.json", json.dumps(device_secrets)))]
    procs = [
        _launch(tmp_path, "registrar", [
            "--port", str(sip_port), "--http-port", str(reg_http), "--state-dir", str(tmp_path / "registrar"),
            *reg_secrets]),
        _launch(tmp_path, "nvr", [
            "--enterprise", "labe0001", "--nvr", "nvr1", "--port", str(nvr_http), "--https-port", str(nvr_https),
            "--tls-cert", str(cert.cert), "--tls-key", str(cert.key), "--state-dir", str(tmp_path / "nvr"),
            "--control", str(tmp_path / "nvr.sock"),
            "--secret-file", str(write_secret(tmp_path / "nvr.secret", nvr_password))]),
    ]
    try:
        _ready(tmp_path, "registrar", procs[0], reg_http)
        _ready(tmp_path, "nvr", procs[1], nvr_http)
    except BaseException:
        for proc in reversed(procs):
            stop(proc)
        raise
    sims = VideoSims(tmp=tmp_path, nvr_url=f"https://127.0.0.1:{nvr_https}", http_url=f"http://127.0.0.1:{nvr_http}",
                     ca_file=ca.cert, nvr_password=nvr_password, nvr_control=tmp_path / "nvr.sock",
                     nvr_log=tmp_path / "nvr.log", sip_port=sip_port, sip_password=sip_password,
                     status_url=f"http://127.0.0.1:{reg_http}/registrations.json", local_port=_free_udp_port())
    return sims, procs


@pytest.fixture
def video_sims(tmp_path: Path) -> Iterator[VideoSims]:
    sims, procs = start_video_sims(tmp_path)
    try:
        yield sims
    finally:
        for proc in reversed(procs):
            stop(proc)


@dataclass
class SwitchSim:
    enterprise: str
    port: int
    password: str
    control: Path
    log: Path

    def state(self) -> dict[str, Any]:
        return control(self.control, {"cmd": "state"})


def start_switch(tmp: Path, enterprise: str) -> tuple[SwitchSim, subprocess.Popen]:
    password, port = secrets.token_hex(8), free_port()
    proc = _launch(tmp, "switch", ["--enterprise", enterprise, "--port", str(port),
                                   "--secret-file", str(write_secret(tmp / "switch.secret", password)),
                                   "--state-dir", str(tmp / "switch"), "--control", str(tmp / "switch.sock")])
    _ready(tmp, "switch", proc, port)
    return SwitchSim(enterprise, port, password, tmp / "switch.sock", tmp / "switch.log"), proc
