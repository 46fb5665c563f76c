"""The NVR simulator's GB/T 28181 SIP user agent: register, keep alive, answer Catalog queries.

As a real NVR does once its platform access is enabled: REGISTER (401 challenge, then the
digest-authorised REGISTER), then a MANSCDP Keepalive MESSAGE every heartbeatTime seconds,
re-registering at three quarters of the expiry; after heartbeatCount unanswered or refused
keepalives it registers again. A configuration change unregisters (Expires: 0) and starts over
with the new settings; a refused registration is retried after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import cast

from hazmon.lab.sim import sip
from hazmon.lab.sim.nvr_state import NvrState, SipConfig
from hazmon.lab.sim.registrar import local_ip_for

# RFC 3261's timer F is 32 s; a lab device gives up sooner so that faults show within seconds.
RETRANSMITS = (0.5, 1.0, 2.0)
TRANSACTION_TIMEOUT = 4.0
RETRY_AFTER_FAILURE = (5.0, 60.0)  # pause after a refused registration: at least, at most
USER_AGENT = "hazmon-lab NVR (Hikvision ISAPI simulator)"


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True when the event was set within the timeout."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(timeout, 0.0))
        return True
    return False


@dataclass
class SipAgent(asyncio.DatagramProtocol):
    state: NvrState
    bind: str
    changed: asyncio.Event
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("hazmon.lab.sim.nvr.sip"))
    transport: asyncio.DatagramTransport | None = None
    port: int | None = None
    pending: dict[str, asyncio.Future[sip.SipMessage]] = field(default_factory=dict)
    call_id: str = ""
    from_tag: str = ""
    cseq: int = 0
    sn: int = 0

    # ------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.state.stopped or not data.strip():
            return
        try:
            msg = sip.parse(data)
        except sip.SipError as exc:
            self.log.warning("from %s:%d: unparsable SIP: %s", addr[0], addr[1], exc)
            return
        if not msg.is_request:
            future = self.pending.get(msg.branch or "")
            if future is not None and not future.done() and (msg.status or 0) >= 200:
                future.set_result(msg)
            return
        self._on_request(msg, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the registrar is down: the transaction times out on its own.
        self.log.debug("UDP error: %s", exc)

    async def _open(self, port: int) -> None:
        if self.transport is not None and self.port == port:
            return
        self._close()
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.bind, port))
        self.port = port

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport, self.port = None, None

    async def _transact(self, req: sip.SipMessage, addr: tuple[str, int]) -> sip.SipMessage | None:
        """Send a request over UDP, retransmitting, and return its final response (None on timeout)."""
        if self.transport is None:
            return None
        branch = req.branch or ""
        future: asyncio.Future[sip.SipMessage] = asyncio.get_running_loop().create_future()
        self.pending[branch] = future
        data, start = req.encode(), time.monotonic()
        try:
            for wait in (*RETRANSMITS, TRANSACTION_TIMEOUT):
                if self.transport is None:
                    return None
                self.transport.sendto(data, addr)
                left = TRANSACTION_TIMEOUT - (time.monotonic() - start)
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(future), min(wait, left))
                if left <= wait:
                    return None
            return None
        finally:
            self.pending.pop(branch, None)

    # ------------------------------------------------------------ building requests

    def _local(self, cfg: SipConfig) -> str:
        return local_ip_for((cfg.registrar, cfg.registrar_port), self.bind)

    def _request(self, cfg: SipConfig, method: str, extra: list[tuple[str, str]],
                 body: bytes = b"", to_user: str | None = None) -> sip.SipMessage:
        self.cseq += 1
        local = self._local(cfg)
        to = to_user or cfg.auth_id
        headers = [
            ("Via", f"SIP/2.0/UDP {local}:{cfg.local_port};rport;branch={sip.new_branch()}"),
            ("From", f"<sip:{cfg.auth_id}@{cfg.server_domain}>;tag={self.from_tag}"),
            ("To", f"<sip:{to}@{cfg.server_domain}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", USER_AGENT),
            *extra,
        ]
        return sip.request(method, f"sip:{cfg.server_id}@{cfg.server_domain}", headers, body)

    def _register_request(self, cfg: SipConfig, expires: int,
                          creds: sip.Credentials | None = None) -> sip.SipMessage:
        extra = [("Contact", f"<sip:{cfg.auth_id}@{self._local(cfg)}:{cfg.local_port}>"),
                 ("Expires", str(expires))]
        if creds is not None:
            extra.append(("Authorization", creds.header()))
        return self._request(cfg, "REGISTER", extra)

    # ------------------------------------------------------------ registration

    async def register(self, cfg: SipConfig, expires: int | None = None) -> bool:
        """One REGISTER exchange (challenge, then credentials); True on 200 OK."""
        expires = cfg.expires if expires is None else expires
        addr = (cfg.registrar, cfg.registrar_port)
        resp = await self._transact(self._register_request(cfg, expires), addr)
        if resp is not None and resp.status == 401:
            try:
                challenge = sip.Challenge.parse(resp.get("WWW-Authenticate") or "")
            except sip.SipError as exc:
                self._failed(None, f"bad challenge: {exc}")
                return False
            creds = sip.authorize(challenge, username=cfg.auth_id, password=cfg.password, method="REGISTER",
                                  uri=f"sip:{cfg.server_id}@{cfg.server_domain}")
            resp = await self._transact(self._register_request(cfg, expires, creds), addr)
        if resp is None:
            self._failed(None, f"no answer from {cfg.registrar}:{cfg.registrar_port}")
            return False
        if resp.status != 200:
            self._failed(resp.status, f"REGISTER refused: {resp.status} {resp.reason}")
            return False
        with self.state.lock:
            status = self.state.status
            status.last_status, status.last_error = 200, None
            status.registered = expires > 0
            status.registered_at = time.time() if expires > 0 else None
        self.log.info("%s with %s:%d as %s", "registered" if expires else "unregistered",
                      cfg.registrar, cfg.registrar_port, cfg.auth_id)
        return True

    def _failed(self, code: int | None, error: str) -> None:
        with self.state.lock:
            self.state.status.registered = False
            self.state.status.last_status, self.state.status.last_error = code, error
        self.log.warning("%s", error)

    async def keepalive(self, cfg: SipConfig) -> bool:
        self.sn += 1
        req = self._request(cfg, "MESSAGE", [("Content-Type", sip.MANSCDP_TYPE)],
                            sip.keepalive(self.sn, cfg.auth_id), to_user=cfg.server_id)
        with self.state.lock:
            self.state.status.keepalives_sent += 1
        resp = await self._transact(req, (cfg.registrar, cfg.registrar_port))
        ok = resp is not None and resp.status == 200
        if ok:
            with self.state.lock:
                self.state.status.keepalives_ok += 1
                self.state.status.last_keepalive_ok = time.time()
        return ok

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Follow the configuration for as long as the simulator runs; a bug must not end it silently."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("SIP agent failed; starting over")
                self._failed(None, "internal error (see the simulator's log)")
                await wait_event(self.changed, RETRY_AFTER_FAILURE[0])

    async def _follow(self) -> None:
        while True:
            self.changed.clear()
            with self.state.lock:
                cfg, stopped = self.state.sip, self.state.stopped
            if stopped or not cfg.complete:
                if not stopped:
                    self._close()
                await self.changed.wait()
                continue
            try:
                await self._open(cfg.local_port)
            except OSError as exc:
                self._failed(None, f"cannot bind UDP {self.bind}:{cfg.local_port}: {exc.strerror}")
                await wait_event(self.changed, RETRY_AFTER_FAILURE[0])
                continue
            self.call_id, self.from_tag = sip.new_call_id(self._local(cfg)), sip.new_tag()
            if not await self.register(cfg):
                pause = min(max(RETRY_AFTER_FAILURE[0], cfg.heartbeat_time), RETRY_AFTER_FAILURE[1])
                await wait_event(self.changed, pause)
                continue
            await self._registered(cfg)

    async def _registered(self, cfg: SipConfig) -> None:
        now = time.monotonic()
        next_beat, refresh_at, misses = now + cfg.heartbeat_time, now + cfg.expires * 0.75, 0
        while True:
            if await wait_event(self.changed, min(next_beat, refresh_at) - time.monotonic()):
                with self.state.lock:
                    stopped = self.state.stopped
                if not stopped:  # a powered-off device says nothing; a reconfigured one says goodbye
                    await self.register(cfg, expires=0)
                with self.state.lock:
                    self.state.status.registered = False
                return
            now = time.monotonic()
            if now >= refresh_at:
                if not await self.register(cfg):
                    return
                refresh_at = time.monotonic() + cfg.expires * 0.75
            if now >= next_beat:
                misses = 0 if await self.keepalive(cfg) else misses + 1
                next_beat += cfg.heartbeat_time
                if next_beat < time.monotonic():  # a late beat does not start a burst
                    next_beat = time.monotonic() + cfg.heartbeat_time
                if misses >= cfg.heartbeat_count:
                    self._failed(None, f"{misses} keepalives unanswered: registering again")
                    return

    # ------------------------------------------------------------ requests from the platform

    def _on_request(self, req: sip.SipMessage, addr: tuple[str, int]) -> None:
        if req.method == "ACK":
            return
        if req.method == "OPTIONS":
            self._reply(req, addr, 200)
            return
        if req.method != "MESSAGE":
            self._reply(req, addr, 501)  # live video (INVITE) is beyond this simulator
            return
        try:
            doc = sip.parse_manscdp(req.body)
        except sip.SipError as exc:
            self.log.warning("MESSAGE from %s:%d: %s", addr[0], addr[1], exc)
            self._reply(req, addr, 400)
            return
        self._reply(req, addr, 200)
        if doc.root == "Query" and doc.cmd_type == "Catalog":
            asyncio.get_running_loop().create_task(self._send_catalog(doc.sn, addr))

    def _reply(self, req: sip.SipMessage, addr: tuple[str, int], status: int) -> None:
        if self.transport is not None:
            resp = sip.response_to(req, status, to_tag=sip.new_tag(), received=addr)
            self.transport.sendto(resp.encode(), addr)

    def catalog(self) -> list[sip.CatalogItem]:
        """The channels that have a GB/T 28181 ID (set through SIPInfo), with their status."""
        with self.state.lock:
            ids, cfg = dict(self.state.channel_ids), self.state.sip
        return [sip.CatalogItem(device_id=ids[cam.channel], name=cam.name,
                                status="ON" if self.state.camera_online(cam) else "OFF",
                                manufacturer=self.state.nvr.vendor, model="IPCamera",
                                parent_id=cfg.auth_id, address=str(cam.address))
                for cam in self.state.cameras if cam.channel in ids]

    async def _send_catalog(self, sn: int, addr: tuple[str, int]) -> None:
        with self.state.lock:
            cfg = self.state.sip
        req = self._request(cfg, "MESSAGE", [("Content-Type", sip.MANSCDP_TYPE)],
                            sip.catalog_response(sn, cfg.auth_id, self.catalog()), to_user=cfg.server_id)
        await self._transact(req, addr)

    def close(self) -> None:
        self._close()
