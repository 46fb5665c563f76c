"""The NVR simulator's state: its GB/T 28181 access settings, channel IDs, camera and disk status.

The HTTP (ISAPI) thread writes it and the asyncio side (SIP user agent, control socket) reads it,
so every access goes through the lock. It persists in --state-dir (0600: it holds the SIP
password, as the device's own flash does) so that a restarted simulator keeps its configuration
for as long as the lab runs.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hazmon.inventory.model import Camera, Enterprise, Nvr
from hazmon.lab.sim.sip_files import read_json, write_json_atomic

# A factory-fresh Hikvision NVR carries the GB/T 28181 example IDs, not the platform's: the
# rollout has to set them, and a lab NVR that was not configured registers as nobody.
FACTORY_SERVER_ID = "34020000002000000001"
FACTORY_DOMAIN = "3402000000"
FACTORY_AUTH_ID = "34020000001180000001"


@dataclass(frozen=True)
class SipConfig:
    enabled: bool = False
    registrar: str = ""
    registrar_port: int = 5060
    server_id: str = FACTORY_SERVER_ID
    server_domain: str = FACTORY_DOMAIN
    auth_id: str = FACTORY_AUTH_ID
    password: str = ""
    expires: int = 3600
    heartbeat_time: int = 60
    heartbeat_count: int = 3
    local_port: int = 5060

    @property
    def complete(self) -> bool:
        """Enabled and enough to register: a registrar address and a password."""
        return self.enabled and bool(self.registrar) and bool(self.password)


@dataclass
class SipStatus:
    """What the NVR's SIP user agent knows of its registration (for the control socket)."""

    registered: bool = False
    registered_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    keepalives_sent: int = 0
    keepalives_ok: int = 0
    last_keepalive_ok: float | None = None


@dataclass
class NvrState:
    ent: Enterprise
    nvr: Nvr
    path: Path
    sip: SipConfig = field(default_factory=SipConfig)
    channel_ids: dict[int, str] = field(default_factory=dict)
    offline_cameras: set[str] = field(default_factory=set)
    disk: str = "ok"
    stopped: bool = False
    status: SipStatus = field(default_factory=SipStatus)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def load(cls, ent: Enterprise, nvr: Nvr, path: Path) -> NvrState:
        state = cls(ent=ent, nvr=nvr, path=path)
        saved = read_json(path)
        if saved:
            state.sip = SipConfig(**saved.get("sip", {}))
            state.channel_ids = {int(k): v for k, v in saved.get("channel_ids", {}).items()}
            state.offline_cameras = set(saved.get("offline_cameras", []))
            state.disk = saved.get("disk", "ok")
        return state

    def save(self) -> None:
        with self.lock:
            data = {"sip": asdict(self.sip), "channel_ids": {str(k): v for k, v in self.channel_ids.items()},
                    "offline_cameras": sorted(self.offline_cameras), "disk": self.disk}
            write_json_atomic(self.path, data, mode=0o600)

    @property
    def cameras(self) -> list[Camera]:
        """The enterprise's cameras recorded on this NVR, by channel."""
        return sorted((c for c in self.ent.cameras if c.nvr == self.nvr.name), key=lambda c: c.channel)

    def camera_online(self, cam: Camera) -> bool:
        with self.lock:
            return cam.name not in self.offline_cameras

    def update_sip(self, changes: dict[str, Any]) -> SipConfig:
        with self.lock:
            self.sip = replace(self.sip, **changes)
            self.save()
            return self.sip

    def set_channel_ids(self, ids: dict[int, str]) -> None:
        with self.lock:
            self.channel_ids.update(ids)
            self.save()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            sip = asdict(self.sip)
            sip.pop("password")  # never leaves the device, as on the real thing
            return {"nvr": self.nvr.name, "stopped": self.stopped, "disk": self.disk, "sip": sip,
                    "sip_status": asdict(self.status),
                    "channel_ids": {str(k): v for k, v in sorted(self.channel_ids.items())},
                    "cameras": {c.name: {"channel": c.channel, "online": c.name not in self.offline_cameras}
                                for c in self.cameras}}
