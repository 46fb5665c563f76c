"""Serve a simulated source's register map as a Modbus TCP server or a Modbus RTU slave (D1b, D1c).

Only the registers of the tag table exist: reading a gap, or writing anything, gets the exception
response a real DCS gives (illegal data address), so a collector that reads across gaps or tries to
write is caught in the lab. Holding (0x03) and input (0x04) registers are separate tables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from hazmon.inventory.model import REGISTER_WIDTH, DataSource, Protocol
from hazmon.lab.sim.dcs_signals import Process

MODBUS_TCP_PORT = 502
READ_FUNCTIONS = {3: "holding", 4: "input"}

log = logging.getLogger("hazmon.lab.sim.dcs")


@dataclass(frozen=True)
class LineSettings:
    """A serial line's settings (D1b), with the inventory's defaults for what it leaves out."""

    baudrate: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1

    @classmethod
    def of(cls, source: DataSource) -> LineSettings:
        line = source.serial
        if line is None:
            return cls()
        return cls(line.baud or 9600, line.parity or "N", line.data_bits or 8, line.stop_bits or 1)


def usable_settings(path: str, wanted: LineSettings) -> LineSettings:
    """The inventory's settings, or parity N where the line is a pty.

    A Linux pty carries no parity bit: the kernel drops PARENB when other settings change with it
    and refuses it (EINVAL) when it is the only change, so a second open with parity E fails. The
    bytes and the RTU frames are the same without it: the simulator serves a pty with parity N and
    says so.
    """
    if wanted.parity == "N" or not os.path.realpath(path).startswith("/dev/pts/"):
        return wanted
    log.warning("%s is a pty, which carries no parity bit: serving it with parity N, not %s",
                path, wanted.parity)
    return replace(wanted, parity="N")


@dataclass
class Link:
    """Which requests the device answers: its own unit id, and none while the `stop` fault holds."""

    unit_id: int  # 0: any unit id (a TCP device that ignores it)
    answering: bool = True

    def received(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        # pymodbus's trace_pdu hook: a request turned into None is consumed and never answered.
        # On an RS-485 line a slave stays silent for another address; a stopped device for all.
        if sending:
            return pdu
        if not self.answering or (self.unit_id and pdu.dev_id != self.unit_id):
            return None
        return pdu


def _table(process: Process, function: str) -> list[SimData]:
    """One read-only SimData per tag of the table; an unused table gets one invalid register."""
    blocks = [
        SimData(tag.reg, count=REGISTER_WIDTH[tag.type], values=0, datatype=SimType.REGISTERS, readonly=True)
        for tag in process.tags
        if tag.function == function and tag.reg is not None
    ]
    return blocks or [SimData(0, datatype=SimType.INVALID)]


def device(process: Process, slave_id: int) -> SimDevice:
    """The pymodbus device: its registers are filled from the process at every read."""

    async def on_access(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        function = READ_FUNCTIONS.get(function_code)
        if set_values is not None or function is None:
            return ExcCodes.ILLEGAL_FUNCTION  # a DCS offers its data read-only
        current = process.registers(function, address, count)
        for addr in range(address, address + count):
            registers[addr - start_address] = current.get(addr, 0)
        return None

    bits = [SimData(0, values=[False] * 16, datatype=SimType.BITS, readonly=True)]
    return SimDevice(
        id=slave_id,
        simdata=(bits, list(bits), _table(process, "holding"), _table(process, "input")),
        action=on_access,
    )


def _identity(source: DataSource) -> ModbusDeviceIdentification:
    return ModbusDeviceIdentification(
        info_name={"VendorName": "hazmon lab", "ProductName": source.system or source.name, "ModelName": "sim"}
    )


def make_server(
    source: DataSource,
    process: Process,
    link: Link,
    *,
    bind: str,
    port: int | None,
    serial_path: str | None,
) -> ModbusBaseServer:
    """A Modbus TCP server or RTU slave for `source` (call inside the running event loop)."""
    dev = device(process, link.unit_id)
    trace = cast(Callable[[bool, ModbusPDU], ModbusPDU], link.received)
    if source.protocol is Protocol.MODBUS_TCP:
        return ModbusTcpServer(
            dev, address=(bind, port or source.port or MODBUS_TCP_PORT), identity=_identity(source),
            trace_pdu=trace,
        )
    if source.protocol is Protocol.MODBUS_RTU:
        if serial_path is None:
            raise ValueError(f"source {source.name}: modbus_rtu needs --serial (the pty end to serve)")
        line = usable_settings(serial_path, LineSettings.of(source))
        return ModbusSerialServer(
            dev,
            framer=FramerType.RTU,
            port=serial_path,
            baudrate=line.baudrate,
            parity=line.parity,
            bytesize=line.bytesize,
            stopbits=line.stopbits,
            identity=_identity(source),
            trace_pdu=trace,
        )
    raise ValueError(f"source {source.name}: protocol {source.protocol} is not Modbus")
