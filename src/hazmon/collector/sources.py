"""Pollers: one asyncio task per data source (D1a-c), so a dead or slow slave delays nobody else.

Each poller connects, polls its tags at their intervals (tags of one interval form one tick;
Modbus tags of a tick are read in contiguous blocks), stamps every sample (Modbus: the read
time; OPC UA: the value's SourceTimestamp where the server gives one, else the read time) and
hands the tick's samples to the sink (the durable queue). Connection-level failures close the
connection and retry with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from hazmon.collector.backoff import backoff_delays
from hazmon.collector.config import BackoffConfig, SourceConfig, TagConfig, read_secret
from hazmon.collector.registers import Read, plan_reads
from hazmon.collector.stats import SourceStats
from hazmon.inventory.model import Protocol

log = logging.getLogger(__name__)

SampleT = tuple[str, float, float]  # tag code, sample time (Unix s), engineering value
Sink = Callable[[str, list[SampleT]], Awaitable[None]]


class SourceDown(Exception):
    """The connection is unusable (refused, timed out, closed): reconnect with backoff."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Poller(ABC):
    def __init__(self, cfg: SourceConfig, backoff: BackoffConfig, sink: Sink, stats: SourceStats) -> None:
        self.cfg = cfg
        self.backoff = backoff
        self.sink = sink
        self.stats = stats
        self._stopping = False
        self._wakeup: asyncio.Event | None = None

    def stop(self) -> None:
        """Finish the current tick (its samples reach the queue), then return from run()."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def _sleep(self, seconds: float) -> None:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(0.0, seconds))

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def read(self, tags: Sequence[TagConfig]) -> list[SampleT]:
        """Read one tick's tags; raise SourceDown when the connection is unusable."""

    def _ticks(self) -> dict[float, list[TagConfig]]:
        by_interval: dict[float, list[TagConfig]] = {}
        for tag in self.cfg.tags:
            by_interval.setdefault(tag.interval, []).append(tag)
        return by_interval

    async def run(self) -> None:
        delays = backoff_delays(self.backoff)
        while not self._stopping:
            try:
                await asyncio.wait_for(self.connect(), self.cfg.timeout + 1)
                self.stats.connects += 1
                log.info("source %s connected", self.cfg.name)
                delays = backoff_delays(self.backoff)
                await self._poll_forever()
            except asyncio.CancelledError:
                await self._quiet_close()
                raise
            except SourceDown as exc:
                self._down(exc.kind, str(exc))
            except (TimeoutError, OSError, ModbusException) as exc:
                self._down("connect", f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                # A poller must never die (that source would go silent): log loudly and retry.
                log.exception("source %s failed unexpectedly", self.cfg.name)
                self._down("internal", f"{type(exc).__name__}: {exc}")
            else:
                break  # stopped
            await self._quiet_close()
            await self._sleep(next(delays))
        await self._quiet_close()

    def _down(self, kind: str, detail: str) -> None:
        if self.stats.up or self.stats.errors[kind] == 0:
            log.warning("source %s down (%s)", self.cfg.name, detail)
        self.stats.up = False
        self.stats.errors[kind] += 1

    async def _quiet_close(self) -> None:
        try:
            await asyncio.wait_for(self.close(), 2)
        except Exception as exc:  # closing a broken connection may fail; it is dropped either way
            log.debug("source %s close: %s", self.cfg.name, exc)

    async def _poll_forever(self) -> None:
        ticks = self._ticks()
        now = time.monotonic()
        due = dict.fromkeys(ticks, now)
        while not self._stopping:
            now = time.monotonic()
            ready = [iv for iv, t in due.items() if t <= now]
            if not ready:
                await self._sleep(min(due.values()) - now)
                continue
            started = time.monotonic()
            samples: list[SampleT] = []
            for iv in ready:
                samples.extend(await self.read(ticks[iv]))
                due[iv] += iv
                if due[iv] <= time.monotonic():
                    # Too slow for this interval: skip the missed ticks instead of bursting.
                    missed = int((time.monotonic() - due[iv]) // iv) + 1
                    self.stats.overruns += missed
                    due[iv] += missed * iv
            took = time.monotonic() - started
            self.stats.polls += 1
            self.stats.poll_seconds_sum += took
            self.stats.last_poll_seconds = took
            self.stats.up = True
            if samples:
                self.stats.samples_read += len(samples)
                await self.sink(self.cfg.name, samples)


class ModbusPoller(Poller):
    """Modbus TCP (D1c) and Modbus RTU over RS-485 (D1b), with pymodbus 3.16."""

    def __init__(self, cfg: SourceConfig, backoff: BackoffConfig, sink: Sink, stats: SourceStats) -> None:
        super().__init__(cfg, backoff, sink, stats)
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._plans: dict[float, list[Read]] = {iv: plan_reads(tags) for iv, tags in self._ticks().items()}

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        c = self.cfg
        # retries=0 and reconnect_delay=0: the poller owns retry and backoff, not the library.
        if c.protocol is Protocol.MODBUS_TCP:
            assert c.host is not None and c.port is not None
            return AsyncModbusTcpClient(c.host, port=c.port, timeout=c.timeout, retries=0, reconnect_delay=0)
        assert c.serial is not None
        s = c.serial
        return AsyncModbusSerialClient(
            s.port, framer=FramerType.RTU, baudrate=s.baud, bytesize=s.data_bits, parity=s.parity,
            stopbits=s.stop_bits, timeout=c.timeout, retries=0, reconnect_delay=0,
        )

    async def connect(self) -> None:
        self.client = self._make_client()
        if not await self.client.connect():
            serial = self.cfg.serial.port if self.cfg.serial else "?"
            where = f"{self.cfg.host}:{self.cfg.port}" if self.cfg.host else serial
            raise SourceDown("connect", f"cannot connect to {where}")

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def read(self, tags: Sequence[TagConfig]) -> list[SampleT]:
        assert self.client is not None
        interval = tags[0].interval
        out: list[SampleT] = []
        for rd in self._plans[interval]:
            c = self.client
            fn = c.read_holding_registers if rd.function == "holding" else c.read_input_registers
            try:
                resp = await fn(rd.start, count=rd.count, device_id=self.cfg.slave_id)
            except ModbusException as exc:
                raise SourceDown("timeout", f"{rd.function} {rd.start}+{rd.count}: {exc}") from None
            ts = time.time()  # read time: when the slave's answer arrived
            if resp.isError():
                # The slave answered with an exception (bad address, busy): the link is fine.
                self.stats.errors["exception_response"] += 1
                log.warning("source %s: %s registers %d..%d: %s", self.cfg.name, rd.function, rd.start,
                            rd.start + rd.count - 1, resp)
                continue
            try:
                out.extend((code, ts, value) for code, value in rd.values(resp.registers))
            except (ValueError, IndexError) as exc:
                self.stats.errors["decode"] += 1
                log.warning("source %s: cannot decode %s %d+%d: %s", self.cfg.name, rd.function, rd.start,
                            rd.count, exc)
                continue
        if len(out) == sum(len(r.tags) for r in self._plans[interval]):
            self.stats.last_success = time.time()
        return out


class OpcUaPoller(Poller):
    """OPC UA (D1a): the server itself or the enterprise's OPC DA -> UA bridge (asyncua 2.1)."""

    def __init__(self, cfg: SourceConfig, backoff: BackoffConfig, sink: Sink, stats: SourceStats) -> None:
        super().__init__(cfg, backoff, sink, stats)
        self.client = None
        self._nodes: dict[str, object] = {}

    async def connect(self) -> None:
        from asyncua import Client  # imported here: asyncua is slow to import and only OPC sites need it

        assert self.cfg.opc is not None
        client = Client(self.cfg.opc.endpoint, timeout=self.cfg.timeout)
        if self.cfg.opc.username:
            client.set_user(self.cfg.opc.username)
        if self.cfg.opc.password_file:
            client.set_password(read_secret(self.cfg.opc.password_file, "opc.password_file"))
        self.client = client
        await client.connect()
        self._nodes = {t.code: client.get_node(t.node) for t in self.cfg.tags}

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.disconnect()

    async def read(self, tags: Sequence[TagConfig]) -> list[SampleT]:
        from asyncua.ua import UaError

        assert self.client is not None
        try:
            results = await asyncio.wait_for(
                self.client.read_attributes([self._nodes[t.code] for t in tags]), self.cfg.timeout
            )
        except (TimeoutError, OSError, ConnectionError, UaError) as exc:
            # A failed Read service (not one bad node) means the session or channel is gone.
            raise SourceDown("timeout", f"{type(exc).__name__}: {exc}") from None
        ts = time.time()
        out: list[SampleT] = []
        for tag, dv in zip(tags, results, strict=True):
            if not dv.StatusCode.is_good() or dv.Value is None:
                # e.g. BadNodeIdUnknown for one tag: the others are still read.
                self.stats.errors["bad_status"] += 1
                log.warning("source %s: tag %s: %s", self.cfg.name, tag.code, dv.StatusCode)
                continue
            try:
                out.append((tag.code, source_time(dv.SourceTimestamp, ts),
                            float(dv.Value.Value) * tag.scale + tag.offset))
            except (TypeError, ValueError):
                self.stats.errors["decode"] += 1
                log.warning("source %s: tag %s value %r is not numeric", self.cfg.name, tag.code,
                            dv.Value.Value)
        if len(out) == len(tags):
            self.stats.last_success = ts
        return out


def source_time(stamp: datetime | None, read_time: float) -> float:
    """An OPC UA value's SourceTimestamp (when the device sampled it) as Unix seconds, else the read
    time. The stamp is UTC by the standard; a naive datetime from the stack is taken as UTC."""
    # DateTime 0 (1601-01-01, the OPC UA epoch) means "no timestamp" (OPC UA Part 6, 5.2.2.5).
    if stamp is None or stamp.year <= 1601:
        return read_time
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    try:
        return stamp.timestamp()
    except (OverflowError, OSError, ValueError):
        return read_time


def make_poller(cfg: SourceConfig, backoff: BackoffConfig, sink: Sink, stats: SourceStats) -> Poller:
    if cfg.protocol is Protocol.OPC:
        return OpcUaPoller(cfg, backoff, sink, stats)
    return ModbusPoller(cfg, backoff, sink, stats)
