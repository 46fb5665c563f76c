"""Simulate one DCS/GDS data source of an enterprise: Modbus TCP, Modbus RTU or OPC UA.

    python -m hazmon.lab.sim.dcs --inventory inventories/lab --enterprise 91510100MALABE0001 \\
        --source dcs --bind 127.0.0.1 --port 15020 --control /run/hazmon-lab/dcs.sock

Every tag of the source is served with plausible moving values, encoded as the tag table says.
Faults on the control socket (one JSON object per line, one JSON reply line):
  {"cmd":"stop"}        stop answering (Modbus: requests are heard, never answered;
                        OPC UA: sessions closed, connections refused)
  {"cmd":"resume"}      answer again
  {"cmd":"freeze","tag":"LT-101"} / {"cmd":"unfreeze","tag":"LT-101"}
  {"cmd":"out_of_range","tag":"LT-101"}   held outside [range_min, range_max] ("side":"low" to go below)
  {"cmd":"set","tag":"LT-101","value":17.5}  held at that value (a forced value) until unfreeze
  {"cmd":"values"}      -> {"values": {tag: engineering value as a client decodes it}, "modes": ..., ...}
SIGTERM or SIGINT: clean exit. --state-dir is accepted and unused: the process lives in memory,
and a restarted simulator starts afresh with no fault set. A modbus_rtu pty is served with parity N
(a Linux pty refuses parity; see dcs_modbus.usable_settings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import termios
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hazmon.inventory.model import DataSource, Enterprise, Protocol
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
from hazmon.lab.sim.dcs_signals import Process, SignalError

if TYPE_CHECKING:
    from pymodbus.server.base import ModbusBaseServer

    from hazmon.lab.sim.dcs_modbus import Link
    from hazmon.lab.sim.dcs_opc import OpcServer

COMMANDS = ("stop", "resume", "freeze", "unfreeze", "out_of_range", "set", "values")


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser("Simulate a DCS/GDS data source (Modbus TCP, Modbus RTU, OPC UA) from the inventory.")
    parser.add_argument("--source", required=True, help="name of a data source of the enterprise")
    parser.add_argument("--serial", default=None, help="modbus_rtu: the pty end this simulator serves")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between value updates (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a reproducible run")
    return parser


def find_source(ent: Enterprise, name: str) -> DataSource:
    for source in ent.data_sources:
        if source.name == name:
            if not source.tags:
                raise SimError(f"--source {name}: enterprise {ent.code} lists no tags for it (rule D1)")
            return source
    names = ", ".join(s.name for s in ent.data_sources) or "none"
    raise SimError(f"--source {name}: enterprise {ent.code} has no such data source (it has: {names})")


@dataclass
class Dcs:
    """One simulated source: its process, its server, and the faults the control socket sets."""

    source: DataSource
    process: Process
    answering: bool = True
    link: Link | None = None  # Modbus: which requests are answered
    modbus: ModbusBaseServer | None = None
    opc: OpcServer | None = None

    async def handle(self, request: JsonObject) -> JsonObject:
        cmd = request["cmd"]
        try:
            return await self._handle(cmd, request)
        except SignalError as exc:
            raise ControlError(str(exc)) from None

    async def _handle(self, cmd: str, request: JsonObject) -> JsonObject:
        if cmd == "values":
            return {"values": self.process.values(), "modes": self.process.modes(),
                    "answering": self.answering, "source": self.source.name,
                    "protocol": str(self.source.protocol)}
        if cmd == "stop":
            self.answering = False
            if self.link is not None:
                self.link.answering = False
            if self.opc is not None:
                await self.opc.stop()
            return {"answering": False}
        if cmd == "resume":
            self.answering = True
            if self.link is not None:
                self.link.answering = True
            if self.opc is not None:
                await self.opc.resume()
            return {"answering": True}
        if cmd not in COMMANDS:
            raise ControlError(f"unknown cmd {cmd!r}; known: {', '.join(COMMANDS)}")
        sig = self.process.signal(request.get("tag"))
        if cmd == "freeze":
            sig.freeze()
        elif cmd == "unfreeze":
            sig.unfreeze()
        elif cmd == "out_of_range":
            side = request.get("side", "high")
            if side not in ("high", "low"):
                raise ControlError(f'out_of_range: "side" is "high" or "low", not {side!r}')
            sig.out_of_range(side)
        elif cmd == "set":
            value = request.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlError(f'set: "value" must be a number, not {value!r}')
            sig.force(float(value))
        if self.opc is not None:
            await self.opc.publish()  # so that a read right after the reply sees the fault
        return {"tag": sig.tag.code, "value": sig.value, "mode": str(sig.mode)}

    async def start(self, args: argparse.Namespace) -> None:
        # Import a protocol's library only where it is served: each simulator is its own process,
        # and asyncua alone costs some 50 MB of resident memory.
        if self.source.protocol is Protocol.OPC:
            from hazmon.lab.sim.dcs_opc import OpcServer, endpoint_url

            password = read_secret(args.secret_file)
            try:
                self.opc = OpcServer(self.source, self.process, endpoint_url(self.source, args.bind, args.port),
                                     password)
                await self.opc.start()
            except ValueError as exc:
                raise SimError(f"--source {self.source.name}: {exc}") from None
            except OSError as exc:
                raise SimError(f"--bind {args.bind} --port {args.port}: cannot listen: {exc}") from None
            return
        if self.source.protocol is Protocol.MODBUS_RTU and not args.serial:
            raise SimError(f"--serial is required: source {self.source.name} is modbus_rtu (rule D1b)")
        from hazmon.lab.sim.dcs_modbus import Link, make_server

        # A slave id of 0 (or none) in the inventory: any unit id, as many TCP devices answer.
        self.link = Link(self.source.slave_id or 0, self.answering)
        try:
            self.modbus = make_server(self.source, self.process, self.link, bind=args.bind, port=args.port,
                                      serial_path=args.serial)
            await self.modbus.serve_forever(background=True)
        except (RuntimeError, OSError, termios.error) as exc:
            where = f"--serial {args.serial}" if args.serial else f"--bind {args.bind} --port {args.port}"
            raise SimError(f"{where}: cannot serve {self.source.protocol}: {exc}") from None

    async def close(self) -> None:
        if self.modbus is not None:
            await self.modbus.shutdown()
        if self.opc is not None:
            await self.opc.close()


async def run(args: argparse.Namespace) -> None:
    log = setup_logging(args, "dcs")
    # asyncua and pymodbus log every session at INFO: keep the simulator's own log readable.
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    if args.tick <= 0:
        raise SimError(f"--tick {args.tick}: must be above 0 seconds")
    _, ent = load_enterprise(args)
    source = find_source(ent, args.source)
    dcs = Dcs(source, Process(source.tags, seed=args.seed))
    done = termination_event()
    control = None
    try:
        await dcs.start(args)
        if args.control is not None:
            control = await serve_control(args.control, dcs.handle)
        log.info("serving %s source %s of %s (%d tags)", source.protocol, source.name, ent.code, len(source.tags))
        last = time.monotonic()
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.tick)
            now = time.monotonic()
            dcs.process.step(now - last)
            last = now
            if dcs.opc is not None:
                await dcs.opc.publish()
    finally:
        if control is not None:
            control.close()
            with contextlib.suppress(FileNotFoundError):
                args.control.unlink()
        await dcs.close()
        log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
