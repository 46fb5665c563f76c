"""The switch simulator's command line: Huawei VRP-like and H3C Comware-like dialects.

Enough of each for netmiko's `huawei` and `hp_comware` drivers and for the switch role:
user view <name>, `system-view` -> [name], `interface X` -> [name-X], `quit`, `return`, Ctrl+Z;
paging off (`screen-length 0 temporary` on VRP, `screen-length disable` on Comware);
`display interface brief`, `display current-configuration [interface X]`, `display this`,
`display version`; in interface view `description ...`, `undo description`,
`port link-type access|trunk|hybrid`, the access VLAN (`port default vlan N` on VRP,
`port access vlan N` on Comware, as on the real devices), `shutdown`, `undo shutdown`;
`vlan N` / `vlan batch N ...`; `save` (with its Y/N question) and Comware's `save force`.
Keywords may be abbreviated (`dis cur int GE0/0/1`), as on the devices. A command a device does
not know gets the device's own error with a caret under the offending word.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from hazmon.lab.sim.switch_state import DEFAULT_VLAN, PortState, SwitchState

Output = list[str]


@dataclass(frozen=True)
class Dialect:
    vendor: str
    paging: tuple[str, ...]
    paging_reply: Output
    system_view_reply: Output
    error_prefix: str
    vlan_words: tuple[str, str, str]
    banner: Output
    version: Output


HUAWEI = Dialect(
    vendor="huawei",
    paging=("screen-length", "0", "temporary"),
    paging_reply=["Info: The configuration takes effect on the current user terminal interface only."],
    system_view_reply=["Enter system view, return user view with Ctrl+Z."],
    error_prefix="Error: ",
    vlan_words=("port", "default", "vlan"),
    banner=["", "Info: The max number of VTY users is 5, and the number",
            "      of current VTY users on line is 1."],
    version=["Huawei Versatile Routing Platform Software",
             "VRP (R) software, Version 5.170 (S5735 V200R019C10SPC500)",
             "Copyright (C) 2000-2020 HUAWEI TECH Co., Ltd.",
             "HUAWEI S5735-L24T4S-A1 Routing Switch uptime is 0 week, 0 day, 1 hour, 2 minutes"],
)
H3C = Dialect(
    vendor="h3c",
    paging=("screen-length", "disable"),
    paging_reply=[],
    system_view_reply=["System View: return to User View with Ctrl+Z."],
    error_prefix=" % ",
    vlan_words=("port", "access", "vlan"),
    banner=["", "******************************************************************************",
            "* Copyright (c) 2004-2023 New H3C Technologies Co., Ltd. All rights reserved.*",
            "* Without the owner's prior written consent,                                 *",
            "* no decompiling or reverse-engineering shall be allowed.                    *",
            "******************************************************************************", ""],
    version=["H3C Comware Software, Version 7.1.070, Release 6616P01",
             "Copyright (c) 2004-2023 New H3C Technologies Co., Ltd. All rights reserved.",
             "H3C S5130S-28S-EI uptime is 0 weeks, 0 days, 1 hour, 2 minutes"],
)
DIALECTS = {"huawei": HUAWEI, "h3c": H3C}

# Interface type abbreviations the devices accept and Comware prints in its brief table.
ABBREVIATIONS = {"GigabitEthernet": "GE", "XGigabitEthernet": "XGE", "Ten-GigabitEthernet": "XGE",
                 "Ethernet": "Eth", "FortyGigE": "FGE", "Twenty-FiveGigE": "WGE"}


def kw(word: str, keyword: str) -> bool:
    """A typed word abbreviates a keyword (case-insensitive prefix), as VRP and Comware allow."""
    return bool(word) and keyword.lower().startswith(word.lower())


def split_interface(name: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z-]+)\s*([\d/:.]+)", name.strip())
    return (match.group(1), match.group(2)) if match else (name, "")


@dataclass
class Cli:
    """One session's command interpreter; the state it changes is the switch's, shared."""

    state: SwitchState
    dialect: Dialect
    mode: str = "user"  # user | system | interface | vlan
    interface: str | None = None
    vlan_view: int | None = None
    confirm: Callable[[str], Output] | None = None
    closed: bool = False
    _words: list[tuple[int, str]] = field(default_factory=list)
    _line: str = ""
    _prompt_before: str = ""

    @property
    def name(self) -> str:
        return self.state.switch.name

    @property
    def prompt(self) -> str:
        if self.confirm is not None:
            return ""
        if self.mode == "user":
            return f"<{self.name}>"
        if self.mode == "interface":
            return f"[{self.name}-{self.interface}]"
        if self.mode == "vlan":
            return f"[{self.name}-vlan{self.vlan_view}]"
        return f"[{self.name}]"

    def banner(self) -> Output:
        return list(self.dialect.banner)

    # ------------------------------------------------------------ helpers

    def _error(self, index: int, message: str = "Unrecognized command found at '^' position.") -> Output:
        column = self._words[index][0] if index < len(self._words) else len(self._line)
        return [" " * (len(self._prompt_before) + column) + "^", self.dialect.error_prefix + message]

    def _wrong(self, index: int) -> Output:
        return self._error(index, "Wrong parameter found at '^' position.")

    def _incomplete(self) -> Output:
        return [self.dialect.error_prefix + "Incomplete command found at '^' position."]

    def _match(self, *keywords: str) -> bool:
        words = [w for _, w in self._words]
        return len(words) >= len(keywords) and all(kw(w, k) for w, k in zip(words, keywords, strict=False))

    def find_port(self, text: str) -> PortState | None:
        kind, number = split_interface(text)
        if not number:
            return None
        for port in self.state.ports.values():
            port_kind, port_number = split_interface(port.name)
            if port_number != number:
                continue
            if kw(kind, port_kind) or kind.lower() == ABBREVIATIONS.get(port_kind, "").lower():
                return port
        return None

    def _leave(self, to_user: bool) -> None:
        if to_user or self.mode == "system":
            self.mode, self.interface, self.vlan_view = "user", None, None
        else:
            self.mode, self.interface, self.vlan_view = "system", None, None

    # ------------------------------------------------------------ the entry point

    def handle(self, line: str) -> Output:
        """Run one line; the output lines (without the prompt that follows them)."""
        self._prompt_before, self._line = self.prompt, line.rstrip()
        if self.confirm is not None:
            answer, self.confirm = self.confirm, None
            return answer(self._line.strip())
        self._words = [(m.start(), m.group()) for m in re.finditer(r"\S+", self._line)]
        if not self._words:
            return []
        first = self._words[0][1]
        if kw(first, "display") and len(first) >= 3:
            return self._display()
        if kw(first, "quit") and len(first) >= 2:
            if self.mode == "user":
                self.closed = True
            else:
                self._leave(to_user=False)
            return []
        if kw(first, "return") and len(first) >= 3:
            if self.mode != "user":
                self._leave(to_user=True)
                return []
            return self._error(0)
        if kw(first, "save") and len(first) >= 2:
            return self._save()
        if self.mode == "user":
            return self._user()
        if self.mode == "interface" and (out := self._interface_view()) is not None:
            return out
        return self._system()

    def ctrl_z(self) -> None:
        self.confirm = None
        if self.mode != "user":
            self._leave(to_user=True)

    # ------------------------------------------------------------ views

    def _user(self) -> Output:
        if self._match(*self.dialect.paging) and len(self._words) == len(self.dialect.paging):
            return list(self.dialect.paging_reply)
        if self._match("system-view") and len(self._words[0][1]) >= 3:
            self.mode = "system"
            return list(self.dialect.system_view_reply)
        return self._error(0)

    def _system(self) -> Output:
        words = [w for _, w in self._words]
        if kw(words[0], "interface") and len(words[0]) >= 3:
            if len(words) < 2:
                return self._incomplete()
            port = self.find_port(" ".join(words[1:]))
            if port is None:
                return self._wrong(1)
            self.mode, self.interface, self.vlan_view = "interface", port.name, None
            return []
        if kw(words[0], "vlan") and len(words) >= 2:
            if kw(words[1], "batch") and self.dialect.vendor == "huawei":
                vlans = self._vlan_list(words[2:])
                if vlans is None:
                    return self._wrong(2)
                self.state.add_vlans(vlans)
                return []
            vlans = self._vlan_list(words[1:2])
            if vlans is None or len(words) > 2:
                return self._wrong(1)
            self.state.add_vlans(vlans)
            self.mode, self.interface, self.vlan_view = "vlan", None, vlans[0]
            return []
        if self.mode == "vlan" and (kw(words[0], "description") or kw(words[0], "name")):
            return []  # VLAN names are not part of what the lab checks
        return self._error(0)

    @staticmethod
    def _vlan_list(words: list[str]) -> list[int] | None:
        vlans: list[int] = []
        index = 0
        while index < len(words):
            if not words[index].isdigit():
                return None
            low = int(words[index])
            if index + 1 < len(words) and words[index + 1].lower() == "to":
                if index + 2 >= len(words) or not words[index + 2].isdigit():
                    return None
                vlans += range(low, int(words[index + 2]) + 1)
                index += 3
            else:
                vlans.append(low)
                index += 1
        return vlans if vlans and all(1 <= v <= 4094 for v in vlans) else None

    def _interface_view(self) -> Output | None:
        """Interface-view commands; None when the line is not one (system-view commands still work)."""
        assert self.interface is not None
        words = [w for _, w in self._words]
        port = self.interface
        undo = kw(words[0], "undo") and len(words[0]) >= 2
        rest = words[1:] if undo else words
        if not rest:
            return self._incomplete()
        if kw(rest[0], "description") and len(rest[0]) >= 3:
            if undo:
                self.state.change(port, description="")
                return []
            text = self._line[self._words[1][0]:].strip() if len(self._words) > 1 else ""
            if not text:
                return self._incomplete()
            self.state.change(port, description=text[:242])
            return []
        if kw(rest[0], "shutdown") and len(rest[0]) >= 2 and len(rest) == 1:
            self.state.change(port, shutdown=not undo)
            return []
        if kw(rest[0], "port") and len(rest) >= 2:
            return self._port_command(port, rest, undo)
        return None

    def _port_command(self, port: str, rest: list[str], undo: bool) -> Output:
        offset = 2 if undo else 1  # index of rest[1] in the typed words
        if kw(rest[1], "link-type") and len(rest[1]) >= 6:
            if undo:
                self.state.change(port, link_type=None)
                return []
            if len(rest) != 3:
                return self._incomplete() if len(rest) < 3 else self._wrong(offset + 2)
            kind = next((k for k in ("access", "trunk", "hybrid") if kw(rest[2], k)), None)
            if kind is None:
                return self._wrong(offset + 1)
            self.state.change(port, link_type=kind)
            return []
        _, second, third = self.dialect.vlan_words
        if kw(rest[1], second) and len(rest) >= 3 and kw(rest[2], third):
            if undo:
                self.state.change(port, vlan=DEFAULT_VLAN)
                return []
            if len(rest) != 4:
                return self._incomplete()
            if not rest[3].isdigit() or not 1 <= int(rest[3]) <= 4094:
                return self._wrong(offset + 2)
            if self.state.ports[port].link_type not in (None, "access", "hybrid"):
                return [self.dialect.error_prefix + "Please renew the default configurations."]
            self.state.change(port, vlan=int(rest[3]))
            return []
        return self._error(offset)

    # ------------------------------------------------------------ display

    def _display(self) -> Output:
        words = [w for _, w in self._words]
        if len(words) < 2:
            return self._incomplete()
        if kw(words[1], "interface") and len(words[1]) >= 3:
            if len(words) >= 3 and kw(words[2], "brief"):
                return self._brief()
            return self._error(2) if len(words) >= 3 else self._incomplete()
        if kw(words[1], "current-configuration") and len(words[1]) >= 3:
            if len(words) == 2:
                return self._full_config()
            if kw(words[2], "interface") and len(words) >= 4:
                port = self.find_port(" ".join(words[3:]))
                return ["#", *self._port_config(port), "#", "return"] if port else self._wrong(3)
            return self._wrong(2)
        if kw(words[1], "this") and len(words) == 2:
            if self.mode == "interface" and self.interface:
                return ["#", *self._port_config(self.state.ports[self.interface]), "#", "return"]
            return ["#", *self._global_config(), "#", "return"]
        if kw(words[1], "version") and len(words) == 2:
            return list(self.dialect.version)
        return self._error(1)

    def _brief(self) -> Output:
        with self.state.lock:
            ports = list(self.state.ports.values())
            if self.dialect.vendor == "huawei":
                return self._brief_huawei(ports)
            return self._brief_h3c(ports)

    @staticmethod
    def _brief_huawei(ports: list[PortState]) -> Output:
        out = ["PHY: Physical", "*down: administratively down", "(l): loopback", "(s): spoofing",
               "(b): BFD down", "(e): ETHOAM down", "(dl): DLDP down", "(d): Dampening Suppressed",
               "InUti/OutUti: input utility/output utility",
               f"{'Interface':<28}{'PHY':<6}{'Protocol':<10}{'InUti':>5}{'OutUti':>7}{'inErrors':>11}"
               f"{'outErrors':>11}"]
        for port in ports:
            phy = "*down" if port.shutdown else ("up" if port.up else "down")
            proto = "up" if port.up else "down"
            out.append(f"{port.name:<28}{phy:<6}{proto:<10}{'0%':>5}{'0%':>7}{'0':>11}{'0':>11}")
        out.append(f"{'NULL0':<28}{'up':<6}{'up(s)':<10}{'0%':>5}{'0%':>7}{'0':>11}{'0':>11}")
        return out

    @staticmethod
    def _brief_h3c(ports: list[PortState]) -> Output:
        out = ["Brief information on interfaces in route mode:", "Link: ADM - administratively down; "
               "Stby - standby", "Protocol: (s) - spoofing",
               f"{'Interface':<21}{'Link':<5}{'Protocol':<9}{'Primary IP':<16}Description",
               f"{'InLoop0':<21}{'UP':<5}{'UP(s)':<9}{'--':<16}",
               f"{'NULL0':<21}{'UP':<5}{'UP(s)':<9}{'--':<16}", "",
               "Brief information on interfaces in bridge mode:",
               "Link: ADM - administratively down; Stby - standby", "Speed: (a) - auto",
               "Duplex: (a)/A - auto; H - half; F - full", "Type: A - access; T - trunk; H - hybrid",
               f"{'Interface':<21}{'Link':<5}{'Speed':<8}{'Duplex':<7}{'Type':<5}{'PVID':<5}Description"]
        for port in ports:
            kind, number = split_interface(port.name)
            short = ABBREVIATIONS.get(kind, kind) + number
            link = "ADM" if port.shutdown else ("UP" if port.up else "DOWN")
            speed, duplex = ("1G(a)", "F(a)") if port.up else ("auto", "A")
            kind_letter = (port.link_type or "access")[0].upper()
            out.append(f"{short:<21}{link:<5}{speed:<8}{duplex:<7}{kind_letter:<5}{port.vlan:<5}"
                       f"{port.description[:27]}".rstrip())
        return out

    def _port_config(self, port: PortState) -> Output:
        with self.state.lock:
            lines = [f"interface {port.name}"]
            if self.dialect.vendor == "h3c":
                lines.append(" port link-mode bridge")
            if port.description:
                lines.append(f" description {port.description}")
            if port.link_type and not (self.dialect.vendor == "h3c" and port.link_type == "access"):
                lines.append(f" port link-type {port.link_type}")
            if port.vlan != DEFAULT_VLAN:
                lines.append(" " + " ".join(self.dialect.vlan_words) + f" {port.vlan}")
            if port.shutdown:
                lines.append(" shutdown")
            return lines

    def _global_config(self) -> Output:
        with self.state.lock:
            vlans = sorted(self.state.vlans)
        if self.dialect.vendor == "huawei":
            extra = [v for v in vlans if v != DEFAULT_VLAN]
            return [f"sysname {self.name}", *(["#", "vlan batch " + " ".join(map(str, extra))] if extra else [])]
        out = [f" sysname {self.name}"]
        for vlan in vlans:
            out += ["#", f"vlan {vlan}"]
        return out

    def _full_config(self) -> Output:
        out = ["#", *self._global_config()]
        for port in list(self.state.ports.values()):
            out += ["#", *self._port_config(port)]
        return [*out, "#", "return"]

    # ------------------------------------------------------------ save

    def _save(self) -> Output:
        words = [w for _, w in self._words]
        if len(words) == 2 and kw(words[1], "force") and self.dialect.vendor == "h3c":
            return self._saved()
        if len(words) > 1:
            return self._wrong(1)
        if self.dialect.vendor == "huawei":
            self.confirm = self._confirm_huawei
            return ["Warning: The current configuration will be written to the device. Continue? [Y/N]:"]
        self.confirm = self._confirm_h3c
        return ["The current configuration will be written to the device. Are you sure? [Y/N]:"]

    def _confirm_huawei(self, answer: str) -> Output:
        if answer.lower() not in ("y", "yes"):
            return ["Info: Cancelled."] if answer else []
        self.state.mark_saved()
        return ["Now saving the current configuration to the slot 0.",
                "Info: Save the configuration successfully."]

    def _confirm_h3c(self, answer: str) -> Output:
        if answer.lower() not in ("y", "yes"):
            return []
        self.confirm = self._file_h3c
        return ["Please input the file name(*.cfg)[flash:/startup.cfg]",
                "(To leave the existing filename unchanged, press the enter key):"]

    def _file_h3c(self, answer: str) -> Output:
        return self._saved()

    def _saved(self) -> Output:
        self.state.mark_saved()
        if self.dialect.vendor == "huawei":
            return ["Info: Save the configuration successfully."]
        return ["Validating file. Please wait...",
                "Saved the current configuration to mainboard device successfully."]
