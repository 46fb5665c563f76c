"""hazmon.lab.sim.nvr: a Hikvision-style NVR: ISAPI over HTTPS and HTTP with digest auth, and a GB/T 28181 agent.

    python -m hazmon.lab.sim.nvr --inventory DIR --enterprise CODE --nvr NAME --bind ADDR [--port 80]
        [--tls-cert FILE --tls-key FILE [--https-port 443]] --secret-file FILE --state-dir DIR [--control SOCK]

As a Hikvision NVR does, it serves ISAPI on 443 with its device certificate (--tls-cert, its key
in a 0600 --tls-key) and on 80 in plain HTTP; the same resources, state and accounts on both.
Without --tls-cert it has no HTTPS (an NVR recorded with `isapi: {scheme: http}`).

ISAPI (user admin, password from --secret-file; RFC 2617 digest, MD5, qop=auth):
    GET /ISAPI/System/deviceInfo
    GET /ISAPI/ContentMgmt/InputProxy/channels, .../channels/status, /ISAPI/System/Video/inputs/channels
        (the enterprise's cameras on this NVR, by channel, with their online status)
    GET /ISAPI/ContentMgmt/Storage/hdd
    GET/PUT /ISAPI/System/Network/SIP (or .../SIP/1): GB/T 28181 platform access (V2)
    GET/PUT /ISAPI/System/Network/SIP/1/SIPInfo: the channels' 20-digit IDs
Once access is enabled with a registrar and a password, the SIP agent (nvr_sipua) registers and
keeps alive over UDP from localPort. Settings persist in --state-dir.

Control socket: {"cmd": "status"}; {"cmd": "stop"} (the NVR falls silent: HTTP connections are
closed unanswered, no SIP traffic), {"cmd": "resume"}; {"cmd": "camera", "camera": NAME,
"online": false}; {"cmd": "disk", "status": "ok" | "error" | "unformatted"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hazmon.lab.sim import nvr_isapi, sip
from hazmon.lab.sim.common import (
    ControlError,
    JsonObject,
    SimError,
    common_parser,
    load_enterprise,
    read_secret,
    run_main,
    serve_control,
    setup_logging,
    termination_event,
)
from hazmon.lab.sim.nvr_sipua import SipAgent
from hazmon.lab.sim.nvr_state import NvrState

DEFAULT_PORT = 80
DEFAULT_HTTPS_PORT = 443
TLS_HANDSHAKE_TIMEOUT = 10.0
USER = "admin"
SIP_PATHS = ("/ISAPI/System/Network/SIP", "/ISAPI/System/Network/SIP/1")
SIPINFO_PATH = "/ISAPI/System/Network/SIP/1/SIPInfo"
MAX_BODY = 1 << 20
DISK_STATES = ("ok", "error", "unformatted", "sleeping")


class IsapiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: NvrState, password: str,
                 on_sip_change: Callable[[], None], log: logging.Logger, tls: ssl.SSLContext | None = None) -> None:
        self.state, self.password, self.on_sip_change, self.log = state, password, on_sip_change, log
        self.realm = f"{state.nvr.model or 'NVR'}"  # Hikvision devices use their model as realm
        self.nonces = sip.NonceMaker()
        self.tls = tls
        super().__init__(address, IsapiHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """With TLS, the handshake is left to the request's own thread (IsapiHandler.setup): a client
        that stalls or refuses our certificate must not hold up the accept loop."""
        sock, addr = super().get_request()
        if self.tls is None:
            return sock, addr
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            # A client that refused our certificate or hung up: one line, not a traceback.
            self.log.info("ISAPI connection from %s ended: %s", client_address[0], exc)
        else:
            self.log.exception("ISAPI request from %s failed", client_address[0])


class IsapiHandler(BaseHTTPRequestHandler):
    server: IsapiServer
    protocol_version = "HTTP/1.1"
    server_version = "App-webs/"  # what Hikvision firmware announces

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(TLS_HANDSHAKE_TIMEOUT)
            self.request.do_handshake()  # a failure ends here, logged by IsapiServer.handle_error
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log.debug("http %s: " + format, self.client_address[0], *args)

    # ------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _send(self, code: int, body: bytes, extra: list[tuple[str, str]] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, status_code: int, string: str, sub: str, message: str | None = None) -> None:
        self._send(code, nvr_isapi.response_status(self.path, status_code, string, sub, message))

    def _challenge(self, stale: bool = False) -> None:
        challenge = sip.Challenge(realm=self.server.realm, nonce=self.server.nonces.make(),
                                  opaque=self.server.nonces.make()[-16:], stale=stale)
        self._send(401, nvr_isapi.response_status(self.path, 4, "Invalid Operation", "unAuthorized"),
                   [("WWW-Authenticate", challenge.header())])

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization")
        if header is None:
            self._challenge()
            return False
        try:
            creds = sip.Credentials.parse(header)
        except sip.SipError:
            self._challenge()
            return False
        nonce_state = self.server.nonces.check(creds.nonce)
        if nonce_state != "ok":
            self._challenge(stale=nonce_state == "stale")
            return False
        if (creds.username != USER or creds.realm != self.server.realm or creds.uri != self.path
                or not creds.verify(self.server.password, self.command)):
            self.server.log.warning("ISAPI %s %s from %s: wrong credentials", self.command, self.path,
                                    self.client_address[0])
            self._challenge()
            return False
        return True

    def _gate(self) -> bytes | None:
        """Common to every request: read the body, go silent when stopped, check the digest."""
        body = self._body()
        if self.server.state.stopped:
            self.close_connection = True  # a powered-off NVR answers nothing
            return None
        if not self._authorized():
            return None
        return body

    # ------------------------------------------------------------ methods

    def do_GET(self) -> None:
        if self._gate() is None:
            return
        state, path = self.server.state, self.path.split("?", 1)[0]
        with state.lock:
            pages: dict[str, Callable[[], bytes]] = {
                "/ISAPI/System/deviceInfo": lambda: nvr_isapi.device_info(state),
                "/ISAPI/ContentMgmt/InputProxy/channels": lambda: nvr_isapi.input_proxy_channels(state),
                "/ISAPI/ContentMgmt/InputProxy/channels/status": lambda: nvr_isapi.input_proxy_status(state),
                "/ISAPI/System/Video/inputs/channels": lambda: nvr_isapi.video_inputs(state),
                "/ISAPI/ContentMgmt/Storage/hdd": lambda: nvr_isapi.hdd_list(state),
                SIPINFO_PATH: lambda: nvr_isapi.sip_info(state),
                **{p: (lambda: nvr_isapi.sip_config(state.sip)) for p in SIP_PATHS},
            }
            page = pages.get(path.rstrip("/"))
            body = page() if page else None
        if body is None:
            self._status(404, 4, "Invalid Operation", "notSupport", f"{path}: no such resource")
        else:
            self._send(200, body)

    def do_PUT(self) -> None:
        body = self._gate()
        if body is None:
            return
        state, path = self.server.state, self.path.split("?", 1)[0].rstrip("/")
        try:
            if path in SIP_PATHS:
                changes = nvr_isapi.parse_sip_config(body)
                state.update_sip(changes)
                self.server.log.info("GB/T 28181 access changed: %s",
                                     ", ".join(sorted(k for k in changes if k != "password")))
                self.server.on_sip_change()
            elif path == SIPINFO_PATH:
                state.set_channel_ids(nvr_isapi.parse_sip_info(body, state.nvr.channels))
            else:
                self._status(404, 4, "Invalid Operation", "notSupport", f"{path}: no such resource")
                return
        except nvr_isapi.IsapiError as exc:
            self._status(400, 6, "Invalid Content", exc.sub_status, str(exc))
            return
        self._status(200, 1, "OK", "ok")

    def _not_allowed(self) -> None:
        if self._gate() is not None:
            self._status(405, 4, "Invalid Operation", "methodNotAllowed", f"{self.command} {self.path}")

    do_POST = do_DELETE = _not_allowed


# ---------------------------------------------------------------- the program


def control_handler(state: NvrState, changed: Callable[[], None]) -> Callable[[JsonObject], JsonObject]:
    def handle(request: JsonObject) -> JsonObject:
        cmd = request["cmd"]
        if cmd == "status":
            return state.snapshot()
        if cmd in ("stop", "resume"):
            with state.lock:
                state.stopped = cmd == "stop"
            changed()
            return {"stopped": state.stopped}
        if cmd == "camera":
            names = [c.name for c in state.cameras]
            if request.get("camera") not in names or not isinstance(request.get("online"), bool):
                raise ControlError(f'camera: give "camera" (one of {names}) and "online" (true/false)')
            with state.lock:
                (state.offline_cameras.discard if request["online"] else state.offline_cameras.add)(
                    request["camera"])
                state.save()
            return state.snapshot()["cameras"]
        if cmd == "disk":
            if request.get("status") not in DISK_STATES:
                raise ControlError(f'disk: "status" must be one of {list(DISK_STATES)}')
            with state.lock:
                state.disk = request["status"]
                state.save()
            return {"disk": state.disk}
        raise ControlError(f"unknown cmd {cmd!r}: nvr takes status, stop, resume, camera, disk")
    return handle


def parser() -> argparse.ArgumentParser:
    p = common_parser("Hikvision-style NVR: ISAPI over HTTPS and HTTP with digest auth, GB/T 28181 registration")
    p.add_argument("--nvr", required=True, help="name of the enterprise's NVR to simulate")
    p.add_argument("--tls-cert", type=Path, default=None, help="the device's HTTPS certificate (PEM): serve HTTPS")
    p.add_argument("--tls-key", type=Path, default=None, help="its private key (PEM, a 0600 file)")
    p.add_argument("--https-port", type=int, default=DEFAULT_HTTPS_PORT, help="HTTPS port (default 443)")
    return p


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The device's server TLS context, or None without --tls-cert (an NVR without HTTPS)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise SimError("--tls-cert and --tls-key go together: the device's certificate and its key")
    read_secret(key, "--tls-key")  # refuses a key file others can read, as for passwords
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SimError(f"--tls-cert {cert} --tls-key {key}: cannot load: {getattr(exc, 'strerror', None) or exc}") \
            from None
    return ctx


async def main(args: argparse.Namespace) -> None:
    log = setup_logging(args, "nvr")
    _, ent = load_enterprise(args)
    nvr = next((n for n in ent.devices.nvrs if n.name == args.nvr), None)
    if nvr is None:
        names = [n.name for n in ent.devices.nvrs]
        raise SimError(f"--nvr {args.nvr}: enterprise {ent.code} has no such NVR (it has {names})")
    password = read_secret(args.secret_file)
    tls = tls_context(args.tls_cert, args.tls_key)
    if args.state_dir is None:
        raise SimError("--state-dir is required: the NVR keeps its configuration there")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    state = NvrState.load(ent, nvr, args.state_dir / f"nvr-{ent.slug}-{nvr.name}.json")
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def notify() -> None:
        loop.call_soon_threadsafe(changed.set)

    done = termination_event()
    # The control socket first: once the HTTP port answers, the simulator is wholly ready.
    control = await serve_control(args.control, control_handler(state, changed.set)) if args.control else None
    port = args.port or DEFAULT_PORT
    # HTTPS before HTTP: once the HTTP port answers, both do (the lab and tests wait for that one).
    listen = ([("https", "--https-port", args.https_port, tls)] if tls else []) + [("http", "--port", port, None)]
    servers: list[IsapiServer] = []
    for scheme, option, number, context in listen:
        try:
            server = IsapiServer((args.bind, number), state, password, notify, log, tls=context)
        except OSError as exc:
            for started in servers:
                started.shutdown()
                started.server_close()
            raise SimError(f"--bind {args.bind} {option} {number}: cannot listen: {exc.strerror}") from None
        threading.Thread(target=server.serve_forever, name=f"isapi-{scheme}", daemon=True).start()
        servers.append(server)
        log.info("NVR %s of %s: ISAPI on %s://%s:%d", nvr.name, ent.code, scheme, args.bind, number)
    agent = SipAgent(state=state, bind=args.bind, changed=changed, log=log)
    agent_task = asyncio.create_task(agent.run())
    await done.wait()
    agent_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await agent_task
    agent.close()
    if control is not None:
        control.close()
    for server in servers:
        await loop.run_in_executor(None, server.shutdown)
        server.server_close()


if __name__ == "__main__":
    raise SystemExit(run_main(main, parser().parse_args()))
