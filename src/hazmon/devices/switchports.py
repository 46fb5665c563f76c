"""The monitoring switch's two N6 ports, reserved for the AI box and the NVR, through netmiko.

Which ports: the model's, through the N6 rule's own port lists (rules.network.n6_ports): a port
marked for the AI box (`connected: ai_box`) or the NVR (`nvr` / `nvr:<name>`) when the inventory has
one, else the first free ports in inventory order, the AI box first. The same inventory always
gives the same ports.

A reserved port gets a description starting with `hazmon:` (the mark that lets a later run or the
decommission find it), access link type, the monitoring VLAN, and `undo shutdown`. The running
configuration is read first (`display current-configuration`) and only the differing commands are
sent; the configuration is saved only after a change. A port still carrying a `hazmon:`
description that the plan no longer reserves (the inventory moved the reservation) is released.

Link state comes from `display interface brief`. A reserved port whose link is down is reported,
not failed: the port is reserved before the installer plugs the box in, and the rollout must be
able to run before that (N7's reachability is the preflight's business).

Dialects: Huawei VRP (netmiko `huawei`) sets the access VLAN with `port default vlan N` and needs
an explicit `port link-type access`; H3C Comware (netmiko `hp_comware`) uses `port access vlan N`,
and its bridge-mode ports are access ports unless configured otherwise.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hazmon.devices.site import DeviceError
from hazmon.inventory.ansible import ROLE_AI_BOX, ROLE_NVR, host_name
from hazmon.inventory.model import Enterprise, Switch
from hazmon.inventory.rules.network import n6_ports

MARK = "hazmon:"  # every description hazmon writes starts with this
ROLES = (ROLE_AI_BOX, ROLE_NVR)


@dataclass(frozen=True)
class Dialect:
    device_type: str  # netmiko's
    vlan_command: str
    access_is_default: bool
    error_pattern: str  # a line of command output that means the device refused a command
    abbreviations: tuple[tuple[str, str], ...] = ()

    def create_vlan(self, vlan: int) -> list[str]:
        return [f"vlan batch {vlan}"] if self.device_type == "huawei" else [f"vlan {vlan}", "quit"]


HUAWEI = Dialect("huawei", "port default vlan", access_is_default=False, error_pattern=r"(?m)^\s*Error:")
COMWARE = Dialect("hp_comware", "port access vlan", access_is_default=True, error_pattern=r"(?m)^\s*%\s",
                  abbreviations=(("Ten-GigabitEthernet", "XGE"), ("GigabitEthernet", "GE"),
                                 ("FortyGigE", "FGE"), ("Ethernet", "Eth")))
DIALECTS = {d.device_type: d for d in (HUAWEI, COMWARE)}


def dialect(device_type: str) -> Dialect:
    if device_type not in DIALECTS:
        raise DeviceError(f"switch device type {device_type!r}: hazmon drives {sorted(DIALECTS)} (netmiko names)")
    return DIALECTS[device_type]


# ---------------------------------------------------------------- which ports (N6)


@dataclass(frozen=True)
class Reservation:
    port: str
    role: str  # ai_box | nvr
    description: str
    vlan: int


def reservations(ent: Enterprise, sw: Switch, vlan: int | None = None) -> list[Reservation]:
    """The AI box's port and the NVR's port, from the model (N6)."""
    ports = n6_ports(sw)
    free = list(ports.free)
    chosen: dict[str, Any] = {}
    for role, marked in ((ROLE_AI_BOX, ports.ai_box), (ROLE_NVR, ports.nvr)):
        if marked:
            chosen[role] = marked[0]
        elif free:
            chosen[role] = free.pop(0)
        else:
            listed = ", ".join(f"{p.name}={p.connected or 'free'}" for p in sw.ports) or "none recorded"
            raise DeviceError(
                f"N6: switch {sw.name} of {ent.code} has no port for the {role.replace('_', ' ')}: the monitoring "
                f"switch must keep two free ports, one for the AI box and one for the NVR (ports: "
                f"{listed})")
    nvr_port = chosen[ROLE_NVR]
    named = (nvr_port.connected or "").partition(":")[2]
    nvr = next((n for n in ent.devices.nvrs if n.name == named), ent.devices.nvrs[0] if ent.devices.nvrs else None)
    targets = {ROLE_AI_BOX: host_name(ent, ROLE_AI_BOX),
               ROLE_NVR: host_name(ent, ROLE_NVR, nvr) if nvr is not None else f"{ent.slug}-nvr"}
    return [Reservation(port=chosen[role].name, role=role, description=f"{MARK}{role} {targets[role]}",
                        vlan=chosen[role].vlan or vlan or sw.vlan) for role in ROLES]


# ---------------------------------------------------------------- the device's configuration


@dataclass(frozen=True)
class PortConfig:
    name: str
    description: str = ""
    link_type: str | None = None
    vlan: int | None = None
    shutdown: bool = False

    @property
    def ours(self) -> bool:
        return self.description.startswith(MARK)


@dataclass
class RunningConfig:
    ports: dict[str, PortConfig] = field(default_factory=dict)
    vlans: set[int] = field(default_factory=lambda: {1})


def _vlan_list(words: list[str]) -> set[int]:
    out: set[int] = set()
    i = 0
    while i < len(words):
        if words[i].isdigit():
            if i + 2 < len(words) and words[i + 1] == "to" and words[i + 2].isdigit():
                out.update(range(int(words[i]), int(words[i + 2]) + 1))
                i += 3
                continue
            out.add(int(words[i]))
        i += 1
    return out


def parse_config(text: str, d: Dialect) -> RunningConfig:
    """Interfaces and VLANs of `display current-configuration` (or of one interface)."""
    cfg = RunningConfig()
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            cfg.ports[current["name"]] = PortConfig(**current)

    vlan_line = re.compile(rf"^\s+{re.escape(d.vlan_command)}\s+(\d+)\s*$")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or not line[0].isspace():
            close()
            current = None
            stripped = line.strip()
            if stripped.startswith("interface "):
                current = {"name": stripped.split(None, 1)[1]}
            elif stripped.startswith("vlan batch "):
                cfg.vlans |= _vlan_list(stripped.split()[2:])
            elif re.fullmatch(r"vlan \d+", stripped):
                cfg.vlans.add(int(stripped.split()[1]))
            continue
        stripped = line.strip()
        if re.fullmatch(r"vlan \d+", stripped):  # Comware prints `vlan N` indented under `#` sometimes
            cfg.vlans.add(int(stripped.split()[1]))
            continue
        if current is None:
            continue
        if stripped.startswith("description "):
            current["description"] = stripped.split(None, 1)[1]
        elif stripped.startswith("port link-type "):
            current["link_type"] = stripped.split()[2]
        elif (m := vlan_line.match(line)) is not None:
            current["vlan"] = int(m.group(1))
        elif stripped == "shutdown":
            current["shutdown"] = True
    close()
    return cfg


def render_port(p: PortConfig, d: Dialect) -> str:
    """A port's configuration as the device prints it (for diffs)."""
    lines = [f"interface {p.name}"]
    if p.description:
        lines.append(f" description {p.description}")
    if p.link_type and not (d.access_is_default and p.link_type == "access"):
        lines.append(f" port link-type {p.link_type}")
    if p.vlan is not None and p.vlan != 1:
        lines.append(f" {d.vlan_command} {p.vlan}")
    if p.shutdown:
        lines.append(" shutdown")
    return "\n".join(lines) + "\n"


def parse_links(text: str, names: list[str], d: Dialect) -> dict[str, str]:
    """Port -> up | down | admin-down from `display interface brief` (full or abbreviated names)."""
    out: dict[str, str] = {}
    for name in names:
        short = name
        for long_form, abbr in d.abbreviations:
            if name.startswith(long_form):
                short = abbr + name[len(long_form):]
                break
        for line in text.splitlines():
            cells = line.split()
            if len(cells) >= 2 and cells[0] in (name, short):
                phy = cells[1].lower()
                out[name] = "admin-down" if phy in ("*down", "adm") else ("up" if phy == "up" else "down")
                break
    return out


# ---------------------------------------------------------------- plan


@dataclass
class Plan:
    commands: list[str] = field(default_factory=list)
    before: dict[str, PortConfig] = field(default_factory=dict)
    after: dict[str, PortConfig] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.commands)

    def diff(self, d: Dialect) -> dict[str, str]:
        names = sorted(set(self.before) | set(self.after))
        return {"before": "".join(render_port(self.before[n], d) for n in names),
                "after": "".join(render_port(self.after[n], d) for n in names),
                "before_header": "switch (running configuration)", "after_header": "switch (inventory)"}


def _reserve(cur: PortConfig, want: Reservation, d: Dialect) -> tuple[list[str], PortConfig]:
    cmds: list[str] = []
    if cur.description != want.description:
        cmds.append(f"description {want.description}")
    access = cur.link_type == "access" or (d.access_is_default and cur.link_type is None)
    if not access:
        cmds.append("port link-type access")
    if (cur.vlan or 1) != want.vlan:
        cmds.append(f"{d.vlan_command} {want.vlan}")
    if cur.shutdown:
        cmds.append("undo shutdown")
    after = replace(cur, description=want.description, link_type="access", vlan=want.vlan, shutdown=False)
    return cmds, after


def _release(cur: PortConfig, d: Dialect) -> tuple[list[str], PortConfig]:
    """Back to a free port: the VLAN first (VRP refuses to change a link type that still carries one)."""
    cmds: list[str] = []
    if cur.vlan not in (None, 1):
        cmds.append(f"undo {d.vlan_command}")
    if cur.link_type is not None:
        cmds.append("undo port link-type")
    if cur.description:
        cmds.append("undo description")
    return cmds, replace(cur, description="", link_type=None, vlan=None)


def plan_ports(running: RunningConfig, wanted: list[Reservation], d: Dialect) -> Plan:
    """Commands that reserve `wanted` (and release stale hazmon reservations); empty when in place."""
    plan = Plan()
    body: list[str] = []
    wanted_by_port = {r.port: r for r in wanted}
    for vlan in sorted({r.vlan for r in wanted} - running.vlans):
        body += d.create_vlan(vlan)
    for name, cur in sorted(running.ports.items()):
        if cur.ours and name not in wanted_by_port:
            cmds, after = _release(cur, d)
            if cmds:
                body += [f"interface {name}", *cmds, "quit"]
                plan.before[name], plan.after[name] = cur, after
                plan.released.append(name)
    for r in wanted:
        if r.port not in running.ports:
            raise DeviceError(f"N6: port {r.port} (for the {r.role.replace('_', ' ')}) is not on the switch: "
                              f"it has {sorted(running.ports)}; fix the port name in the inventory")
        cur = running.ports[r.port]
        cmds, after = _reserve(cur, r, d)
        plan.before[r.port], plan.after[r.port] = cur, after
        if cmds:
            body += [f"interface {r.port}", *cmds, "quit"]
    plan.commands = body
    return plan


def plan_release(running: RunningConfig, d: Dialect) -> Plan:
    """Decommission: every port carrying a hazmon description back to free."""
    plan = Plan()
    for name, cur in sorted(running.ports.items()):
        if not cur.ours:
            continue
        cmds, after = _release(cur, d)
        plan.before[name], plan.after[name] = cur, after
        plan.released.append(name)
        plan.commands += [f"interface {name}", *cmds, "quit"]
    return plan


# ---------------------------------------------------------------- the session


class Session(Protocol):
    """What hazmon uses of a netmiko connection (a fake in unit tests)."""

    base_prompt: str
    RETURN: str

    def send_command(self, command_string: str, **kwargs: Any) -> str: ...
    def save_config(self) -> str: ...
    def write_channel(self, out_data: str) -> None: ...
    def paramiko_cleanup(self) -> None: ...


# netmiko's send_config_set and disconnect find out which view the CLI is in by waiting for 2 s of
# silence after a bare Enter (read_channel_timing), three times per change and once more on the
# way out: 8 of a Huawei session's 9 seconds. hazmon knows the views it walks through (user view
# <name>, system view [name], interface view [name-port]), so it waits for the prompt instead.
def _prompt(session: Session) -> str:
    return rf"[<\[]{re.escape(session.base_prompt)}[^\s<>\[\]]*[>\]]\s*$"


def configure(session: Session, commands: list[str], d: Dialect, switch_name: str = "switch") -> str:
    """system-view, the commands, return; the transcript. Stops at the first command the device refuses
    (the next ones would run in the wrong context) and raises DeviceError with the device's words."""
    pattern = _prompt(session)
    out: list[str] = []
    for command in ["system-view", *commands, "return"]:
        answer = session.send_command(command, expect_string=pattern, strip_prompt=False, strip_command=True,
                                      read_timeout=30)
        out += [command, answer]
        if re.search(d.error_pattern, answer):
            if command != "return":
                session.send_command("return", expect_string=pattern, strip_prompt=False, read_timeout=30)
            words = " | ".join(line.strip() for line in answer.splitlines() if line.strip() and line.strip() != "^")
            raise DeviceError(f"switch {switch_name} refused {command!r}: {words}")
    return "\n".join(out)


def close(session: Session) -> None:
    """Leave the user view with `quit` (ends the VTY session) and close SSH, without netmiko's waits."""
    with contextlib.suppress(Exception):
        session.write_channel("quit" + session.RETURN)
    with contextlib.suppress(Exception):
        session.paramiko_cleanup()


def connect(device_type: str, host: str, username: str, password: str, port: int = 22,
            timeout: float = 20.0) -> Session:
    """A netmiko session (imported here: only the control node, which has netmiko, calls it)."""
    from netmiko import ConnectHandler
    from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

    try:
        return ConnectHandler(device_type=device_type, host=host, port=port, username=username,
                              password=password, timeout=timeout, auth_timeout=timeout,
                              banner_timeout=timeout, conn_timeout=timeout)
    except NetmikoAuthenticationException:
        raise DeviceError(f"switch {host}:{port}: the device refused user {username!r} (wrong password)") from None
    except (NetmikoTimeoutException, OSError) as exc:
        raise DeviceError(f"switch {host}:{port}: no SSH session ({str(exc).splitlines()[0]})") from None


@dataclass
class Result:
    changed: bool
    commands: list[str]
    ports: list[dict[str, Any]]
    released: list[str]
    saved: bool
    warnings: list[str]
    diff: dict[str, str]


def read(session: Session, d: Dialect) -> RunningConfig:
    return parse_config(session.send_command("display current-configuration", read_timeout=60), d)


def links(session: Session, names: list[str], d: Dialect) -> dict[str, str]:
    return parse_links(session.send_command("display interface brief"), names, d)


def run(session: Session, d: Dialect, wanted: list[Reservation] | None, check: bool,
        switch_name: str = "switch") -> Result:
    """Reserve `wanted` (None: release every hazmon port), save after a change, report link state."""
    running = read(session, d)
    plan = plan_ports(running, wanted, d) if wanted is not None else plan_release(running, d)
    saved = False
    if plan.changed and not check:
        configure(session, plan.commands, d, switch_name)
        after = read(session, d)
        left = plan_ports(after, wanted, d) if wanted is not None else plan_release(after, d)
        if left.changed:
            raise DeviceError(f"switch {switch_name}: after configuring, these commands would still be needed: "
                              f"{left.commands} (the device did not take them)")
        out = session.save_config()
        if "success" not in out.lower():
            raise DeviceError(f"switch {switch_name}: saving the configuration failed: {out.strip()[-200:]}")
        saved = True
    ports: list[dict[str, Any]] = []
    warnings: list[str] = []
    if wanted is not None:
        state = links(session, [r.port for r in wanted], d)
        for r in wanted:
            link = state.get(r.port, "unknown")
            ports.append({"port": r.port, "role": r.role, "description": r.description, "vlan": r.vlan,
                          "link": link})
            if link != "up":
                warnings.append(f"N6: switch {switch_name} port {r.port}, reserved for the "
                                f"{r.role.replace('_', ' ')}, has link {link}: nothing is plugged in yet, or "
                                "the cable or the device is faulty")
    return Result(changed=plan.changed, commands=plan.commands, ports=ports, released=plan.released,
                  saved=saved, warnings=warnings, diff=plan.diff(d))



def problems(running: RunningConfig, wanted: list[Reservation], d: Dialect) -> list[str]:
    """For a verify gate: what keeps the switch from holding `wanted` (empty: the ports are reserved)."""
    out = []
    for r in wanted:
        cur = running.ports.get(r.port)
        if cur is None:
            out.append(f"port {r.port} ({r.role}) is not on the switch")
            continue
        cmds, _ = _reserve(cur, r, d)
        if cmds:
            out.append(f"port {r.port} ({r.role}) is not reserved as the inventory says: missing {cmds}")
    return out


def verify(session: Session, d: Dialect, wanted: list[Reservation]) -> list[str]:
    """Read-only: the reservation problems of a live switch (a verify gate's check)."""
    return problems(read(session, d), wanted, d)
