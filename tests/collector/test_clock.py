"""Time on the gateway: a bounded wait for clock synchronisation at start, said in the log and the
metrics; OPC UA samples stamped with the server's SourceTimestamp where it gives one.

The clock reader is injected: nothing here reads or changes the machine's clock (the real
reader is tested, read only, in test_queue.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import pytest
from asyncua import ua
from collector_harness import base_config
from collector_sims import Broker, Receiver, RegisterMap, metric, scrape, start_modbus_tcp, start_opcua, stop_server
from collector_sims import wait_for as wait

from hazmon.collector.clock import ClockState, wait_for_sync
from hazmon.collector.sources import source_time

SYNCED = ClockState(True, 0.001, 0.0005, None)
UNSYNCED = ClockState(False, 16.0, 16.0, None)


class FakeClock:
    """A kernel clock state that becomes synchronised `after` seconds (None: never)."""

    def __init__(self, after: float | None) -> None:
        self.start = time.monotonic()
        self.after = after
        self.reads = 0
        self.synced_at: float | None = None  # Unix time of the first read that said synchronised

    def __call__(self) -> ClockState:
        self.reads += 1
        if self.after is not None and time.monotonic() - self.start >= self.after:
            if self.synced_at is None:
                self.synced_at = time.time()
            return SYNCED
        return UNSYNCED


def run_wait(read, limit: float, stop_after: float | None = None):
    async def go():
        stop = asyncio.Event()
        if stop_after is not None:
            asyncio.get_running_loop().call_later(stop_after, stop.set)
        return await wait_for_sync(read, limit, stop, interval=0.05, log_every=0.2)

    return asyncio.run(go())


# ------------------------------------------------------------------ unit: the wait


def test_the_wait_ends_when_the_clock_is_synchronised(caplog):
    caplog.set_level(logging.INFO, "hazmon.collector.clock")
    clock = FakeClock(after=0.5)
    got = run_wait(clock, limit=30)
    assert got.synced is True and 0.5 <= got.waited < 10
    text = caplog.text
    assert "not synchronised" in text and "waiting up to 30 s" in text
    assert "still waiting" in text, "it says so while it waits"
    assert "is synchronised (after" in text


def test_the_wait_is_bounded_and_says_it_gave_up(caplog):
    caplog.set_level(logging.INFO, "hazmon.collector.clock")
    t0 = time.monotonic()
    got = run_wait(FakeClock(after=None), limit=0.6)
    assert got.synced is False and got.waited >= 0.6 and time.monotonic() - t0 < 5
    assert "still not synchronised after 1 s: polling anyway" in caplog.text


def test_no_wait_when_synchronised_when_told_not_to_or_when_unreadable(caplog):
    caplog.set_level(logging.INFO, "hazmon.collector.clock")
    assert run_wait(lambda: SYNCED, limit=30).waited == 0
    got = run_wait(lambda: UNSYNCED, limit=0)
    assert (got.synced, got.waited) == (False, 0) and "clock.sync_wait is 0" in caplog.text
    got = run_wait(lambda: None, limit=30)
    assert (got.synced, got.waited) == (None, 0)
    assert "cannot tell whether the clock is synchronised" in caplog.text


def test_a_stop_ends_the_wait():
    t0 = time.monotonic()
    got = run_wait(FakeClock(after=None), limit=600, stop_after=0.3)
    assert got.synced is False and time.monotonic() - t0 < 5


def test_source_time():
    stamp = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert source_time(stamp, 5.0) == stamp.timestamp()
    assert source_time(stamp.replace(tzinfo=None), 5.0) == stamp.timestamp(), "naive is UTC"
    assert source_time(None, 5.0) == 5.0
    assert source_time(datetime(1601, 1, 1), 5.0) == 5.0, "OPC UA's 'no timestamp'"


# ------------------------------------------------------------------ the service


def counter_source(port: int) -> dict:
    return {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
            "tags": [{"code": "CNT", "register": 0, "type": "uint32", "interval": 0.1}]}


@pytest.fixture
def plant(tmp_path, servers):
    server, port = start_modbus_tcp(servers, RegisterMap([0, 0, 0, 0], counter_at=0))
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    yield port, broker, receiver
    receiver.close()
    stop_server(servers, server)
    broker.stop()


@pytest.mark.integration
def test_polling_starts_only_once_the_clock_is_synchronised(tmp_path, plant, run_collector):
    port, broker, receiver = plant
    clock = FakeClock(after=2.0)
    c = run_collector(base_config(tmp_path, broker.port, [counter_source(port)]), clock=clock).collector
    wait(lambda: len(receiver.samples()) >= 5, 30, "samples")
    assert clock.synced_at is not None
    first = min(s.ts for _src, s in receiver.samples())
    assert first >= clock.synced_at, "no sample was read before the clock was synchronised"
    text = scrape(c.metrics_port)
    assert metric(text, "hazmon_collector_clock_sync_wait_seconds") >= 2.0
    assert metric(text, "hazmon_collector_clock_started_unsynced") == 0
    assert metric(text, "hazmon_collector_clock_synced") == 1


@pytest.mark.integration
def test_a_clock_that_never_synchronises_delays_polling_by_the_bound_only(tmp_path, plant, run_collector, caplog):
    port, broker, receiver = plant
    caplog.set_level(logging.INFO, "hazmon.collector.clock")
    t0 = time.time()
    c = run_collector(base_config(tmp_path, broker.port, [counter_source(port)], clock={"sync_wait": 1.0}),
                      clock=FakeClock(after=None)).collector
    wait(lambda: len(receiver.samples()) >= 5, 30, "samples after the bounded wait")
    assert min(s.ts for _src, s in receiver.samples()) >= t0 + 1.0
    text = scrape(c.metrics_port)
    assert metric(text, "hazmon_collector_clock_started_unsynced") == 1
    assert metric(text, "hazmon_collector_clock_synced") == 0
    assert metric(text, "hazmon_collector_clock_readable") == 1
    assert "polling anyway" in caplog.text


@pytest.mark.integration
def test_an_unreadable_clock_is_said_and_does_not_delay_polling(tmp_path, plant, run_collector):
    port, broker, receiver = plant
    c = run_collector(base_config(tmp_path, broker.port, [counter_source(port)]), clock=lambda: None).collector
    wait(lambda: len(receiver.samples()) >= 5, 30, "samples")
    text = scrape(c.metrics_port)
    assert metric(text, "hazmon_collector_clock_readable") == 0
    assert metric(text, "hazmon_collector_clock_sync_wait_seconds") == 0
    assert "hazmon_collector_clock_synced" not in text


# ------------------------------------------------------------------ OPC UA SourceTimestamp


@pytest.mark.integration
def test_opc_samples_carry_the_servers_source_timestamp_where_it_gives_one(tmp_path, servers, run_collector):
    opc = start_opcua(servers, {"WITH_TS": ua.Variant(1.5, ua.VariantType.Double),
                                "NO_TS": ua.Variant(2.5, ua.VariantType.Double)})
    # The device sampled WITH_TS a while ago (an hour back, with microseconds): its DataValue says so.
    stamp = datetime.fromtimestamp(int(time.time()) - 3600, UTC).replace(microsecond=250_125)

    async def set_values():
        await opc.server.write_attribute_value(
            ua.NodeId.from_string(opc.nodes["WITH_TS"]),
            ua.DataValue(ua.Variant(1.5, ua.VariantType.Double), SourceTimestamp=stamp))
        await opc.server.write_attribute_value(
            ua.NodeId.from_string(opc.nodes["NO_TS"]),
            ua.DataValue(ua.Variant(2.5, ua.VariantType.Double), SourceTimestamp=None))

    servers.run(set_values())
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    try:
        t0 = time.time()
        run_collector(base_config(tmp_path, broker.port, [
            {"name": "sis", "protocol": "opc", "opc": {"endpoint": opc.url}, "timeout": 3,
             "tags": [{"code": "WITH_TS", "node": opc.nodes["WITH_TS"], "interval": 0.2},
                      {"code": "NO_TS", "node": opc.nodes["NO_TS"], "interval": 0.2}]}]))
        wait(lambda: {"WITH_TS", "NO_TS"} <= {s.tag for _src, s in receiver.samples()}, 60, "both tags")
        t1 = time.time()
        got = [(s.tag, s.ts) for _src, s in receiver.samples()]
        with_ts = {ts for tag, ts in got if tag == "WITH_TS"}
        assert with_ts == {stamp.timestamp()}, "the server's SourceTimestamp, not the read time"
        no_ts = [ts for tag, ts in got if tag == "NO_TS"]
        assert all(t0 <= ts <= t1 for ts in no_ts), "no SourceTimestamp: the read time"
    finally:
        receiver.close()
        servers.run(opc.server.stop())
        broker.stop()
