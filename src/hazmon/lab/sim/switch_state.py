"""The switch simulator's running configuration, shared by every SSH session and kept in --state-dir.

Every session (thread) changes it under the lock and each change is written at once (atomic
rewrite), so a second connection, or a restarted simulator, sees what the first one set: the
state lasts as long as the lab runs. It starts as a factory-fresh switch: no descriptions,
every port in VLAN 1, ports with something connected physically up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hazmon.inventory.model import Switch
from hazmon.lab.sim.sip_files import read_json, write_json_atomic

DEFAULT_VLAN = 1
KEPT_FIELDS = ("description", "link_type", "vlan", "shutdown", "cable")  # what a restart restores


@dataclass
class PortState:
    name: str
    connected: bool  # a cable with a device behind it (from the inventory's Switch.ports)
    description: str = ""
    link_type: str | None = None  # None: never set (the factory default)
    vlan: int = DEFAULT_VLAN
    shutdown: bool = False
    cable: bool = True  # False: unplugged by a control-socket fault

    @property
    def up(self) -> bool:
        return self.connected and self.cable and not self.shutdown


@dataclass
class SwitchState:
    switch: Switch
    path: Path
    ports: dict[str, PortState] = field(default_factory=dict)
    vlans: set[int] = field(default_factory=lambda: {DEFAULT_VLAN})
    saved_at: float | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def load(cls, switch: Switch, path: Path) -> SwitchState:
        state = cls(switch=switch, path=path)
        saved = read_json(path) or {}
        kept = saved.get("ports", {})
        for port in switch.ports:
            fields = {k: v for k, v in kept.get(port.name, {}).items() if k in KEPT_FIELDS}
            state.ports[port.name] = PortState(name=port.name, connected=port.connected is not None, **fields)
        state.vlans = set(saved.get("vlans", [DEFAULT_VLAN]))
        state.saved_at = saved.get("saved_at")
        return state

    def save(self) -> None:
        with self.lock:
            write_json_atomic(self.path, self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"name": self.switch.name, "vendor": self.switch.vendor, "saved_at": self.saved_at,
                    "vlans": sorted(self.vlans),
                    "ports": {n: {**asdict(p), "up": p.up} for n, p in self.ports.items()}}

    def change(self, port: str, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self.ports[port], key, value)
            if "vlan" in changes:
                self.vlans.add(changes["vlan"])
            self.save()

    def add_vlans(self, vlans: list[int]) -> None:
        with self.lock:
            self.vlans.update(vlans)
            self.save()

    def mark_saved(self) -> None:
        with self.lock:
            self.saved_at = time.time()
            self.save()
