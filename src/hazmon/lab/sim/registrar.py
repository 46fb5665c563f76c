"""hazmon.lab.sim.registrar: a small but real GB/T 28181 SIP registrar over UDP.

It plays the platform's side of GB/T 28181 registration (REQUIREMENTS.md, domain facts; V2):
REGISTER without credentials gets a 401 digest challenge (realm = the SIP domain), correct
credentials get 200 OK (with the Date header devices set their clocks from), wrong ones get 403;
a MESSAGE Keepalive from a registered device gets 200 OK. After a registration it asks the device
for its Catalog, as a platform does, and records the channels the device reports.

Everything it saw is in --state-dir/registrations.json (atomic rewrite) and, with --http-port,
at http://BIND:PORT/registrations.json, for the tests and the rollout's verification:
    {"server_id", "domain", "updated_at",
     "devices": {ID: {"registered", "online", "address", "contact", "registered_at", "expires",
                      "expires_at", "last_keepalive", "keepalives", "keepalive_interval",
                      "channels": [{"device_id", "name", "status"}], ...}},
     "rejections": [{"device_id", "address", "time", "status", "reason"}]}
A device is online while registered and keeping alive: offline after --missed (default 3)
heartbeat intervals without a keepalive; the interval is the one observed between its last two
keepalives, or --heartbeat (default 60 s, the GB/T 28181 default) until two have arrived.

Control socket: {"cmd": "registrations"} -> the JSON above; {"cmd": "stop"} (answer nothing, as a
platform outage), {"cmd": "resume"}.

Passwords (N8): --secret-file holds the one password of the province; --device-secrets a 0600 JSON
table {device ID: password}, one per device. With the table, a device in it registers with its own
password only (never the shared one nor another device's), and a device not in it is refused,
unless --shared-fallback lets such devices use the shared password (a platform migrating to
per-device passwords).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from hazmon.inventory.findings import InventoryError
from hazmon.inventory.validate import load_valid
from hazmon.lab.sim import sip
from hazmon.lab.sim.common import (
    ControlError,
    JsonObject,
    SimError,
    common_parser,
    read_secret,
    run_main,
    serve_control,
    setup_logging,
    termination_event,
)
from hazmon.lab.sim.sip_files import write_json_atomic

DEFAULT_PORT = 5060
STATE_FILE = "registrations.json"
REJECTIONS_KEPT = 100
DEVICE_ID = re.compile(r"^\d{20}$")


def local_ip_for(dest: tuple[str, int], bound: str) -> str:
    """The address to put in our Via/From when the socket is bound to a wildcard."""
    if bound not in ("0.0.0.0", ""):
        return bound
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(dest)  # UDP connect sends nothing; it only picks the route's source address
        return probe.getsockname()[0]


@dataclass
class Device:
    device_id: str
    address: str
    contact: str
    registered_at: float
    expires: int
    registered: bool = True
    last_keepalive: float | None = None
    keepalives: int = 0
    keepalive_interval: float | None = None
    last_sn: int | None = None
    unregistered_at: float | None = None
    catalog_at: float | None = None
    channels: list[dict[str, str]] = field(default_factory=list)

    @property
    def expires_at(self) -> float:
        return self.registered_at + self.expires

    def online(self, now: float, heartbeat: float, missed: int) -> bool:
        if not self.registered or now > self.expires_at:
            return False
        last_seen = max(self.registered_at, self.last_keepalive or 0.0)
        return now - last_seen <= missed * (self.keepalive_interval or heartbeat)


@dataclass(frozen=True)
class Passwords:
    """Which password each device must register with."""

    shared: str | None = field(default=None, repr=False)
    per_device: dict[str, str] = field(default_factory=dict, repr=False)
    shared_fallback: bool = False  # devices absent from per_device may use the shared password

    def for_device(self, device_id: str) -> str | None:
        """The one password this device is accepted with, or None when it has none here."""
        if device_id in self.per_device:
            return self.per_device[device_id]
        if not self.per_device or self.shared_fallback:
            return self.shared
        return None


@dataclass
class Registrar(asyncio.DatagramProtocol):
    server_id: str
    domain: str
    passwords: Passwords
    state_file: Path
    bind: str
    heartbeat: float = 60.0
    missed: int = 3
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("hazmon.lab.sim.registrar"))
    devices: dict[str, Device] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    nonces: sip.NonceMaker = field(default_factory=sip.NonceMaker)
    stopped: bool = False
    transport: asyncio.DatagramTransport | None = None
    _cseq: int = 0
    _outbox: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    _dirty: bool = False
    _flags: list[tuple[str, bool, bool]] = field(default_factory=list)

    # ------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.stopped or not data.strip():
            return  # a stopped platform answers nothing; CRLF keepalives (RFC 5626) need no answer
        try:
            msg = sip.parse(data)
        except sip.SipError as exc:
            self.log.warning("from %s:%d: unparsable SIP: %s", addr[0], addr[1], exc)
            return
        if not msg.is_request:
            return  # answers to our Catalog queries: the device's Catalog MESSAGE is what counts
        try:
            if msg.method == "REGISTER":
                self._on_register(msg, addr)
            elif msg.method == "MESSAGE":
                self._on_message(msg, addr)
            elif msg.method == "OPTIONS":
                self._reply(msg, addr, 200)
            elif msg.method != "ACK":
                self._reply(msg, addr, 405, extra=[("Allow", "REGISTER, MESSAGE, OPTIONS")])
        except sip.SipError as exc:
            self.log.warning("from %s:%d: bad %s: %s", addr[0], addr[1], msg.method, exc)
            self._reply(msg, addr, 400)
        # The file is written before anyone hears back, so whoever sees our answer finds the
        # state it produced in registrations.json. A bare challenge changes nothing.
        if self._dirty:
            self.save()
            self._dirty = False
        outbox, self._outbox = self._outbox, []
        for data, dest in outbox:
            if self.transport is not None:
                self.transport.sendto(data, dest)

    def _send(self, msg: sip.SipMessage, addr: tuple[str, int]) -> None:
        self._outbox.append((msg.encode(), addr))

    def _reply(self, req: sip.SipMessage, addr: tuple[str, int], status: int,
               extra: list[tuple[str, str]] | None = None) -> None:
        self._send(sip.response_to(req, status, to_tag=sip.new_tag(), extra=extra, received=addr), addr)

    # ------------------------------------------------------------ REGISTER

    def _reject(self, req: sip.SipMessage, addr: tuple[str, int], device_id: str, status: int,
                reason: str) -> None:
        self.log.warning("REGISTER from %s at %s:%d refused (%d): %s", device_id, *addr, status, reason)
        self._dirty = True
        self.rejections.append({"device_id": device_id, "address": f"{addr[0]}:{addr[1]}",
                                "time": time.time(), "status": status, "reason": reason})
        del self.rejections[:-REJECTIONS_KEPT]
        self._reply(req, addr, status)

    def _challenge(self, req: sip.SipMessage, addr: tuple[str, int], stale: bool = False) -> None:
        challenge = sip.Challenge(realm=self.domain, nonce=self.nonces.make(), stale=stale)
        self._reply(req, addr, 401, extra=[("WWW-Authenticate", challenge.header())])

    def _on_register(self, req: sip.SipMessage, addr: tuple[str, int]) -> None:
        device_id = sip.uri_user(req.get("To") or "") or ""
        if not DEVICE_ID.match(device_id):
            self._reject(req, addr, device_id, 403, "the device ID in To is not 20 digits (GB/T 28181)")
            return
        authorization = req.get("Authorization")
        if authorization is None:
            self._challenge(req, addr)
            return
        creds = sip.Credentials.parse(authorization)
        nonce_state = self.nonces.check(creds.nonce)
        if nonce_state != "ok":
            self._challenge(req, addr, stale=nonce_state == "stale")
            return
        if creds.username != device_id or creds.realm != self.domain:
            self._reject(req, addr, device_id, 403,
                         f"digest username {creds.username!r} / realm {creds.realm!r} do not match "
                         f"the device ID and the domain {self.domain}")
            return
        password = self.passwords.for_device(device_id)
        if password is None:
            self._reject(req, addr, device_id, 403, "no password for this device: the platform keeps one per "
                                                    "device and this device ID has none")
            return
        if not creds.verify(password, "REGISTER"):
            own = " (this device's own: passwords are per device)" if device_id in self.passwords.per_device else ""
            self._reject(req, addr, device_id, 403, f"wrong password{own} (digest response does not match)")
            return
        expires = self._expires(req)
        now = time.time()
        old = self.devices.get(device_id)
        self._dirty = True
        if expires == 0:
            if old is not None:
                old.registered, old.unregistered_at = False, now
            self.log.info("device %s unregistered", device_id)
            self._reply(req, addr, 200, extra=[("Expires", "0")])
            return
        contact = req.get("Contact") or ""
        fresh = old is None or not old.registered or now > old.expires_at
        device = old if old is not None and not fresh else Device(
            device_id=device_id, address="", contact=contact, registered_at=now, expires=expires,
            channels=old.channels if old is not None else [])
        device.address, device.contact = f"{addr[0]}:{addr[1]}", contact
        device.registered_at, device.expires, device.registered = now, expires, True
        self.devices[device_id] = device
        self.log.info("device %s registered from %s:%d for %d s", device_id, *addr, expires)
        # GB/T 28181 §9.1.2.1: the 200 OK's Date header is the device's clock source.
        date = datetime.now().isoformat(timespec="milliseconds")
        extra = [("Contact", f"{contact};expires={expires}")] if contact else []
        self._reply(req, addr, 200, extra=[*extra, ("Expires", str(expires)), ("Date", date)])
        if fresh or not device.channels:
            self._query_catalog(device, addr)

    def _expires(self, req: sip.SipMessage) -> int:
        value = sip.header_param(req.get("Contact") or "", "expires") or req.get("Expires") or "3600"
        if not value.strip().isdigit():
            raise sip.SipError(f"Expires {value!r}: not a number of seconds")
        return int(value)

    def _query_catalog(self, device: Device, addr: tuple[str, int]) -> None:
        self._cseq += 1
        local = local_ip_for(addr, self.bind)
        port = self.transport.get_extra_info("sockname")[1] if self.transport else DEFAULT_PORT
        msg = sip.request("MESSAGE", f"sip:{device.device_id}@{addr[0]}:{addr[1]}", [
            ("Via", f"SIP/2.0/UDP {local}:{port};rport;branch={sip.new_branch()}"),
            ("From", f"<sip:{self.server_id}@{self.domain}>;tag={sip.new_tag()}"),
            ("To", f"<sip:{device.device_id}@{self.domain}>"),
            ("Call-ID", sip.new_call_id(local)),
            ("CSeq", f"{self._cseq} MESSAGE"),
            ("Max-Forwards", "70"),
            ("Content-Type", sip.MANSCDP_TYPE),
        ], body=sip.catalog_query(self._cseq, device.device_id))
        self._send(msg, addr)

    # ------------------------------------------------------------ MESSAGE

    def _on_message(self, req: sip.SipMessage, addr: tuple[str, int]) -> None:
        doc = sip.parse_manscdp(req.body)
        device = self.devices.get(doc.device_id)
        now = time.time()
        if doc.cmd_type == "Keepalive":
            if device is None or not device.registered or now > device.expires_at:
                self.log.warning("keepalive from unregistered device %s at %s:%d", doc.device_id, *addr)
                self._reply(req, addr, 403)
                return
            self._dirty = True
            if doc.sn != device.last_sn:  # a retransmission is not a new heartbeat
                if device.last_keepalive is not None:
                    device.keepalive_interval = round(now - device.last_keepalive, 3)
                device.last_keepalive, device.last_sn = now, doc.sn
                device.keepalives += 1
            self._reply(req, addr, 200)
            return
        if doc.root == "Response" and doc.cmd_type == "Catalog" and device is not None:
            known = {c["device_id"]: c for c in device.channels}
            for item in sip.catalog_items(doc):
                known[item.device_id] = {"device_id": item.device_id, "name": item.name,
                                         "status": item.status}
            device.channels = sorted(known.values(), key=lambda c: c["device_id"])
            device.catalog_at = now
            self._dirty = True
        self._reply(req, addr, 200)

    # ------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        devices = {}
        for dev_id, dev in self.devices.items():
            # Built by hand, not dataclasses.asdict: this runs on every datagram and asdict's
            # deep copies made it the registrar's main cost.
            devices[dev_id] = {
                "device_id": dev.device_id, "address": dev.address, "contact": dev.contact,
                "registered": dev.registered and now <= dev.expires_at,
                "online": dev.online(now, self.heartbeat, self.missed),
                "registered_at": dev.registered_at, "expires": dev.expires, "expires_at": dev.expires_at,
                "unregistered_at": dev.unregistered_at, "last_keepalive": dev.last_keepalive,
                "keepalives": dev.keepalives, "keepalive_interval": dev.keepalive_interval,
                "catalog_at": dev.catalog_at, "channels": [dict(c) for c in dev.channels],
            }
        return {"server_id": self.server_id, "domain": self.domain, "devices": devices,
                "rejections": list(self.rejections), "updated_at": now}

    def save(self) -> None:
        write_json_atomic(self.state_file, self.snapshot(), indent=None)
        self._flags = self._status_flags()

    def _status_flags(self) -> list[tuple[str, bool, bool]]:
        now = time.time()
        return [(d.device_id, d.registered and now <= d.expires_at, d.online(now, self.heartbeat, self.missed))
                for d in self.devices.values()]

    async def housekeeping(self, period: float = 0.5) -> None:
        """Online/offline and expiry change with time alone: rewrite the file when they do."""
        while True:
            await asyncio.sleep(period)
            if self._status_flags() != self._flags:
                self.save()

    def control(self, request: JsonObject) -> JsonObject:
        cmd = request["cmd"]
        if cmd == "registrations":
            return self.snapshot()
        if cmd in ("stop", "resume"):
            self.stopped = cmd == "stop"
            self.log.info("control: %s", cmd)
            return {"stopped": self.stopped}
        raise ControlError(f"unknown cmd {cmd!r}: registrar takes registrations, stop, resume")


async def serve_http(registrar: Registrar, host: str, port: int) -> asyncio.Server:
    """GET /registrations.json (or /) answers the registrar's state as JSON."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(parts) == 3 and parts[0] == "GET" and parts[1] in ("/", "/registrations.json"):
                status, body = "200 OK", json.dumps(registrar.snapshot(), ensure_ascii=False).encode()
            else:
                status, body = "404 Not Found", b'{"error": "GET /registrations.json"}'
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: "
                         f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port)


def parser() -> argparse.ArgumentParser:
    # The registrar is the province's, not an enterprise's: no --enterprise.
    p = common_parser("GB/T 28181 SIP registrar (UDP) for the lab's platform", enterprise=False)
    p.add_argument("--server-id", help="20-digit SIP server ID (default: the inventory's platform.sip)")
    p.add_argument("--domain", help="10-digit SIP domain (default: the inventory's platform.sip)")
    p.add_argument("--http-port", type=int, default=None, help="also serve registrations.json over HTTP")
    p.add_argument("--heartbeat", type=float, default=60.0, help="assumed heartbeat interval, seconds")
    p.add_argument("--missed", type=int, default=3, help="missed heartbeats before a device is offline")
    p.add_argument("--device-secrets", type=Path, default=None,
                   help="0600 JSON file {device ID: password}: a password per device")
    p.add_argument("--shared-fallback", action="store_true",
                   help="with --device-secrets: devices not in it may register with --secret-file's password")
    return p


def read_passwords(args: argparse.Namespace) -> Passwords:
    """The shared password and/or the per-device table, as the options give them."""
    if args.device_secrets is None:
        if args.shared_fallback:
            raise SimError("--shared-fallback needs --device-secrets (it says what devices absent from it may use)")
        return Passwords(shared=read_secret(args.secret_file))
    try:
        table = json.loads(read_secret(args.device_secrets, "--device-secrets"))
    except ValueError as exc:
        raise SimError(f"--device-secrets {args.device_secrets}: not JSON: {exc}") from None
    if not isinstance(table, dict) or not all(
            isinstance(k, str) and DEVICE_ID.match(k) and isinstance(v, str) and v for k, v in table.items()):
        raise SimError(f"--device-secrets {args.device_secrets}: expected {{20-digit device ID: non-empty "
                       "password}}")
    if args.shared_fallback:
        return Passwords(shared=read_secret(args.secret_file), per_device=table, shared_fallback=True)
    if args.secret_file is not None:
        raise SimError("--secret-file with --device-secrets is used only with --shared-fallback: say which")
    return Passwords(per_device=table)


async def main(args: argparse.Namespace) -> None:
    log = setup_logging(args, "registrar")
    try:
        inv, _ = load_valid(args.inventory)
    except InventoryError as exc:
        raise SimError(f"--inventory {args.inventory}: the inventory is invalid:\n{exc}") from None
    platform_sip = inv.province.platform.sip if inv.province else None
    server_id = args.server_id or (platform_sip.server_id if platform_sip else None)
    domain = args.domain or (platform_sip.domain if platform_sip else None)
    if not server_id or not re.fullmatch(r"\d{20}", server_id):
        raise SimError(f"--server-id {server_id!r}: a GB/T 28181 server ID is 20 digits")
    if not domain or not re.fullmatch(r"\d{10}", domain):
        raise SimError(f"--domain {domain!r}: a GB/T 28181 SIP domain is 10 digits")
    if args.state_dir is None:
        raise SimError("--state-dir is required: the registrar writes registrations.json there")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    registrar = Registrar(server_id=server_id, domain=domain, passwords=read_passwords(args),
                          state_file=args.state_dir / STATE_FILE, bind=args.bind,
                          heartbeat=args.heartbeat, missed=args.missed, log=log)
    loop = asyncio.get_running_loop()
    done = termination_event()
    servers: list[asyncio.Server] = []
    # Control socket and SIP port before the HTTP port: once HTTP answers, all is ready.
    if args.control:
        servers.append(await serve_control(args.control, registrar.control))
    port = args.port or DEFAULT_PORT
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: registrar, local_addr=(args.bind, port))
    except OSError as exc:
        raise SimError(f"--bind {args.bind} --port {port}: cannot listen on UDP: {exc.strerror}") from None
    registrar.save()
    if args.http_port:
        servers.append(await serve_http(registrar, args.bind, args.http_port))
    keeper = asyncio.create_task(registrar.housekeeping())
    log.info("registrar %s (domain %s) on udp %s:%d", server_id, domain, args.bind, port)
    await done.wait()
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    for server in servers:
        server.close()
    transport.close()
    registrar.save()


if __name__ == "__main__":
    raise SystemExit(run_main(main, parser().parse_args()))
