"""hazmon.lab.sim.switch: the enterprise's monitoring switch, an SSH server with a VRP/Comware-like CLI.

    python -m hazmon.lab.sim.switch --inventory DIR --enterprise CODE --bind ADDR [--port 22]
        --secret-file FILE --state-dir DIR [--control SOCK]

The inventory's Switch of the enterprise chooses the dialect (vendor huawei: VRP-like for netmiko's
`huawei`; vendor h3c: Comware-like for `hp_comware`) and the ports (connected ones up, free ones
down). User admin, password from --secret-file. The running configuration is shared by all
sessions and kept in --state-dir (switch_state), with the SSH host key, so that it lasts as long
as the lab runs; the command line itself is switch_cli.

Control socket: {"cmd": "state"} -> ports and VLANs; {"cmd": "link", "port": NAME, "up": false}
(pull a cable); {"cmd": "stop"} (refuse SSH connections), {"cmd": "resume"}.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

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
from hazmon.lab.sim.switch_cli import DIALECTS, Cli, Dialect
from hazmon.lab.sim.switch_state import SwitchState

DEFAULT_PORT = 22
USER = "admin"
AUTH_TIMEOUT = 20.0


class SshServer(paramiko.ServerInterface):
    """Password login for admin, one interactive shell with a pty: what netmiko asks for."""

    def __init__(self, password: str) -> None:
        self.password = password.encode()
        self.shell = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == USER and hmac.compare_digest(password.encode(), self.password):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, channel: paramiko.Channel, term: bytes, width: int, height: int,
                                  pixelwidth: int, pixelheight: int, modes: bytes) -> bool:
        return True

    def check_channel_window_change_request(self, channel: paramiko.Channel, width: int, height: int,
                                            pixelwidth: int, pixelheight: int) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.shell.set()
        return True


def run_shell(chan: paramiko.Channel, cli: Cli) -> None:
    """A terminal's line discipline: echo what is typed, run each line, print output and prompt."""
    chan.sendall(("\r\n".join(cli.banner()) + "\r\n" + cli.prompt).encode())
    line, after_cr = "", False
    while not cli.closed:
        data = chan.recv(4096)
        if not data:
            return
        out: list[str] = []
        for ch in data.decode("utf-8", "replace"):
            if after_cr and ch == "\n":  # CR LF is one end of line
                after_cr = False
                continue
            after_cr = ch == "\r"
            if ch in "\r\n":
                result = cli.handle(line)
                line = ""
                text = "\r\n" + "\r\n".join(result)
                if cli.confirm is None:  # a question waits on its own line for the answer
                    text += ("\r\n" if result else "") + cli.prompt
                out.append(text)
                if cli.closed:
                    break
            elif ch == "\x1a":  # Ctrl+Z: back to user view
                cli.ctrl_z()
                line = ""
                out.append("\r\n" + cli.prompt)
            elif ch == "\x03":  # Ctrl+C: drop the line
                line = ""
                out.append("\r\n" + cli.prompt)
            elif ch in "\x7f\x08":
                if line:
                    line = line[:-1]
                    out.append("\x08 \x08")
            elif ch >= " " or ch == "\t":
                line += ch
                out.append(ch)
        if out:
            chan.sendall("".join(out).encode())


@dataclass
class SwitchServer:
    state: SwitchState
    dialect: Dialect
    password: str
    host_key: paramiko.PKey
    log: logging.Logger
    stopped: bool = False
    listener: socket.socket | None = None
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def listen(self, bind: str, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        sock.listen(16)
        self.listener = sock
        threading.Thread(target=self._accept_loop, name="ssh-accept", daemon=True).start()

    def close(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()

    def _accept_loop(self) -> None:
        assert self.listener is not None
        while True:
            try:
                conn, addr = self.listener.accept()
            except OSError:
                return  # the listener was closed: the simulator is stopping
            if self.stopped:
                conn.close()  # a switch that is down refuses the session
                continue
            threading.Thread(target=self._session, args=(conn, addr), daemon=True).start()

    def _session(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        server = SshServer(self.password)
        try:
            transport.start_server(server=server)
            chan = transport.accept(AUTH_TIMEOUT)
            if chan is None or not server.shell.wait(AUTH_TIMEOUT):
                self.log.warning("ssh from %s:%d: no authenticated shell", *addr)
                return
            with self.lock:
                self.sessions += 1
            self.log.info("ssh session from %s:%d", *addr)
            try:
                run_shell(chan, Cli(self.state, self.dialect))
            finally:
                chan.close()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.log.info("ssh from %s:%d ended: %s", addr[0], addr[1], exc)
        finally:
            transport.close()

    def control(self, request: JsonObject) -> JsonObject:
        cmd = request["cmd"]
        if cmd == "state":
            return {**self.state.snapshot(), "sessions": self.sessions, "stopped": self.stopped}
        if cmd in ("stop", "resume"):
            self.stopped = cmd == "stop"
            return {"stopped": self.stopped}
        if cmd == "link":
            port, up = request.get("port"), request.get("up")
            if port not in self.state.ports or not isinstance(up, bool):
                raise ControlError(f'link: give "port" (one of {list(self.state.ports)}) and "up" (true/false)')
            self.state.change(port, cable=up)
            return self.state.snapshot()["ports"][port]
        raise ControlError(f"unknown cmd {cmd!r}: switch takes state, link, stop, resume")


def host_key(path: Path) -> paramiko.PKey:
    """The switch's SSH host key, made once and kept so that clients see the same key all lab long."""
    if path.exists():
        return paramiko.RSAKey.from_private_key_file(str(path))
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(path))
    path.chmod(0o600)
    return key


def parser() -> argparse.ArgumentParser:
    return common_parser("monitoring switch: SSH with a Huawei VRP-like or H3C Comware-like CLI")


async def main(args: argparse.Namespace) -> None:
    log = setup_logging(args, "switch")
    # Paramiko logs a traceback for every port probe (the lab's readiness checks); session
    # failures are logged here, one line each.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    _, ent = load_enterprise(args)
    switch = ent.devices.switch
    if switch is None:
        raise SimError(f"--enterprise {ent.code}: the inventory records no monitoring switch (devices.switch)")
    password = read_secret(args.secret_file)
    if args.state_dir is None:
        raise SimError("--state-dir is required: the switch keeps its configuration there")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    state = SwitchState.load(switch, args.state_dir / f"switch-{ent.slug}-{switch.name}.json")
    state.save()
    server = SwitchServer(state=state, dialect=DIALECTS[switch.vendor], password=password,
                          host_key=host_key(args.state_dir / f"switch-{ent.slug}-{switch.name}.key"), log=log)
    done = termination_event()
    # The control socket first: once the SSH port answers, the simulator is wholly ready.
    control = await serve_control(args.control, server.control) if args.control else None
    port = args.port or DEFAULT_PORT
    try:
        server.listen(args.bind, port)
    except OSError as exc:
        raise SimError(f"--bind {args.bind} --port {port}: cannot listen: {exc.strerror}") from None
    log.info("switch %s (%s) of %s: ssh on %s:%d", switch.name, switch.vendor, ent.code, args.bind, port)
    await done.wait()
    if control is not None:
        control.close()
    server.close()


if __name__ == "__main__":
    raise SystemExit(run_main(main, parser().parse_args()))
