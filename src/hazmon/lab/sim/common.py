"""What every lab simulator shares: the common options, the inventory lookup, secrets, the control socket.

The contract gives every simulator the same options:
--inventory/--enterprise say what to simulate, --bind/--port where to listen, --secret-file the
password (0600, never on a command line), --control a UNIX socket taking one JSON object per line
(faults; UNIX sockets cross network namespaces), --state-dir where files may be kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hazmon.inventory.findings import InventoryError
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Enterprise
from hazmon.inventory.validate import load_valid

JsonObject = dict[str, Any]
ControlHandler = Callable[[JsonObject], JsonObject | Awaitable[JsonObject]]

log = logging.getLogger("hazmon.lab.sim")


class SimError(Exception):
    """A simulator cannot start: the message names the option or file and what is wrong."""


class ControlError(Exception):
    """A control request the simulator refuses; its message goes back to the caller."""


def common_parser(description: str | None, *, enterprise: bool = True) -> argparse.ArgumentParser:
    """An argument parser holding the contract's common options; each simulator adds its own.

    enterprise=False leaves out --enterprise, for a province or city service (the registrar).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--inventory", type=Path, required=True, help="inventory directory")
    if enterprise:
        parser.add_argument("--enterprise", required=True, help="enterprise code (or slug) to simulate")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the protocol's standard port)")
    parser.add_argument("--secret-file", type=Path, default=None, help="0600 file holding the password")
    parser.add_argument("--control", type=Path, default=None, help="UNIX socket for faults (JSON lines)")
    parser.add_argument("--state-dir", type=Path, default=None, help="directory the simulator may write to")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def setup_logging(args: argparse.Namespace, name: str) -> logging.Logger:
    """Log to stderr (the lab redirects it to a file per simulator)."""
    logging.basicConfig(level=args.log_level, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    return logging.getLogger(f"hazmon.lab.sim.{name}")


def load_enterprise(args: argparse.Namespace) -> tuple[Inventory, Enterprise]:
    """The valid inventory and the enterprise --enterprise names (nothing runs on an invalid one)."""
    try:
        inv, _ = load_valid(args.inventory)
    except InventoryError as exc:
        raise SimError(f"--inventory {args.inventory}: the inventory is invalid:\n{exc}") from None
    ent = inv.enterprise(args.enterprise)
    if ent is None:
        raise SimError(f"--enterprise {args.enterprise}: no such enterprise in {inv.root}")
    return inv, ent


def read_secret(path: Path | str | None, option: str = "--secret-file") -> str:
    """The password in a 0600 file; refuse a missing, empty or group/other-accessible file."""
    if path is None:
        raise SimError(f"{option} is required: this simulator needs a password")
    file = Path(path)
    try:
        mode = file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SimError(f"{option} {file}: mode {stat.S_IMODE(mode):04o} lets others in; make it 0600")
        value = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SimError(f"{option} {file}: cannot read: {exc.strerror}") from None
    if not value:
        raise SimError(f"{option} {file}: the file is empty")
    return value


def write_secret(path: Path | str, value: str) -> Path:
    """Write a password into a new 0600 file (for the lab and tests that start simulators)."""
    file = Path(path)
    with contextlib.suppress(FileNotFoundError):
        file.unlink()
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return file


async def _answer(handler: ControlHandler, line: bytes) -> JsonObject:
    try:
        request = json.loads(line)
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            raise ControlError('a request is one JSON object with a "cmd" string')
        reply = handler(request)
        if inspect.isawaitable(reply):
            reply = await reply
    except json.JSONDecodeError as exc:
        return {"ok": False, "error": f"not JSON: {exc}"}
    except ControlError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # one bad request must not kill the simulator
        log.exception("control request failed")
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, **reply}


async def serve_control(path: Path | str, handler: ControlHandler) -> asyncio.Server:
    """Serve `handler` on a UNIX socket: one JSON request per line, one JSON reply line each.

    The handler returns a dict (or an awaitable of one); "ok": true is added. It raises
    ControlError for a refused request, answered as {"ok": false, "error": ...}.
    """
    sock_path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()  # a socket left by a killed run

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                reply = await _answer(handler, line)
                writer.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(client, path=str(sock_path))
    os.chmod(sock_path, 0o600)  # faults are for the lab's owner only
    return server


def control(path: Path | str, request: JsonObject, timeout: float = 5.0) -> JsonObject:
    """Send one control request and return the reply (a blocking client for the lab and tests)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{path}: the simulator closed the control socket without a reply")
            buf += chunk
    return json.loads(buf)


def termination_event() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT, so that a simulator exits cleanly (call inside the loop)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event


def run_main(main: Callable[[argparse.Namespace], Awaitable[None]], args: argparse.Namespace) -> int:
    """Run an async simulator main; a SimError is printed as one clear line and exits 2."""
    try:
        asyncio.run(main(args))
    except SimError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
