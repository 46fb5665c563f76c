"""Modbus register maps: plan contiguous reads and decode every data type and byte/word order."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from hazmon.collector.config import MAX_REGISTERS_PER_READ, TagConfig
from hazmon.inventory.model import DataType

_FORMAT: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}


def to_bytes(registers: Sequence[int], byte_order: str, word_order: str) -> bytes:
    """Registers as big-endian bytes of the value (big/big is standard Modbus).

    word_order little: the least significant register comes first on the wire;
    byte_order little: the two bytes inside each register are swapped.
    """
    words = list(registers) if word_order == "big" else list(reversed(registers))
    if byte_order == "big":
        return b"".join(w.to_bytes(2, "big") for w in words)
    return b"".join(w.to_bytes(2, "little") for w in words)


def from_value(value: float, dtype: DataType, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """The registers a device holds for `value` (the inverse of decode; used by test servers)."""
    fmt = _FORMAT[dtype]
    raw = struct.pack(fmt, value if dtype in (DataType.FLOAT32, DataType.FLOAT64) else int(value))
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    regs = [int.from_bytes(w, "big" if byte_order == "big" else "little") for w in words]
    return regs if word_order == "big" else list(reversed(regs))


def decode(registers: Sequence[int], tag: TagConfig) -> float:
    """Engineering value of one tag: raw value * scale + offset."""
    raw = struct.unpack(_FORMAT[tag.type], to_bytes(registers, tag.byte_order, tag.word_order))[0]
    return raw * tag.scale + tag.offset


@dataclass(frozen=True, slots=True)
class Read:
    """One Modbus request: `count` registers from `start` of one function table."""

    function: str  # "holding" (0x03) or "input" (0x04)
    start: int
    count: int
    tags: tuple[TagConfig, ...]

    def values(self, registers: Sequence[int]) -> list[tuple[str, float]]:
        out = []
        for tag in self.tags:
            assert tag.reg is not None
            lo = tag.reg - self.start
            out.append((tag.code, decode(registers[lo:lo + tag.width], tag)))
        return out


def plan_reads(tags: Sequence[TagConfig], max_count: int = MAX_REGISTERS_PER_READ) -> list[Read]:
    """Group tags (of one function table and interval) into contiguous reads of <= max_count registers.

    Only touching or overlapping registers are merged: reading a gap could hit an address the
    device does not map and make the whole request fail with an exception response.
    """
    reads: list[Read] = []
    by_table: dict[str, list[TagConfig]] = {}
    for tag in tags:
        by_table.setdefault(tag.function, []).append(tag)
    for function, group in sorted(by_table.items()):
        group.sort(key=lambda t: (t.reg or 0, t.width))
        start = end = -1
        members: list[TagConfig] = []
        for tag in group:
            assert tag.reg is not None
            t_end = tag.reg + tag.width
            if members and tag.reg <= end and max(end, t_end) - start <= max_count:
                end = max(end, t_end)
                members.append(tag)
                continue
            if members:
                reads.append(Read(function, start, end - start, tuple(members)))
            start, end, members = tag.reg, t_end, [tag]
        if members:
            reads.append(Read(function, start, end - start, tuple(members)))
    return reads
