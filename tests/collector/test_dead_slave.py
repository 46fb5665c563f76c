"""Acceptance 3: a slave that stops answering does not slow the other sources down."""

from __future__ import annotations

import time

import pytest
from collector_harness import base_config
from collector_sims import Broker, RegisterMap, SilentSlave, start_modbus_tcp, stop_server, wait_for

from hazmon.testing.procs import free_port

pytestmark = pytest.mark.integration

INTERVAL = 0.1
WINDOW = 4.0


def source(name: str, port: int) -> dict:
    return {"name": name, "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port, "slave_id": 1,
            "timeout": 1.0, "tags": [{"code": f"{name}-LT", "register": 0, "type": "float32",
                                      "interval": INTERVAL}]}


def polls_per_second(collector, name: str) -> float:
    stats = collector.stats.sources[name]
    n0, t0 = stats.polls, time.monotonic()
    time.sleep(WINDOW)
    return (stats.polls - n0) / (time.monotonic() - t0)


def test_hung_and_absent_slaves_do_not_delay_others(tmp_path, servers, run_collector):
    good_server, good_port = start_modbus_tcp(servers, RegisterMap([0x4148, 0, 0, 0]))
    other_server, other_port = start_modbus_tcp(servers, RegisterMap([0x4148, 0, 0, 0]))
    hung = SilentSlave()  # accepts, never answers: every read runs into its timeout
    absent = free_port()  # nothing listens: connection refused, reconnect with backoff
    broker = Broker(tmp_path)
    broker.start()
    try:
        # Normal cadence, measured on the same machine with only healthy sources.
        (tmp_path / "a").mkdir()
        base = run_collector(base_config(tmp_path / "a", broker.port, [source("good", good_port)]))
        wait_for(lambda: base.collector.stats.sources["good"].polls > 5, 10, "polling")
        normal = polls_per_second(base.collector, "good")
        base.stop()
        assert normal == pytest.approx(1 / INTERVAL, rel=0.1)

        (tmp_path / "b").mkdir()
        cfg = base_config(tmp_path / "b", broker.port, [
            source("good", good_port), source("hung", hung.port), source("absent", absent),
            source("other", other_port),
        ])
        running = run_collector(cfg)
        c = running.collector
        wait_for(lambda: c.stats.sources["hung"].errors["timeout"] >= 1, 10, "the hung slave to time out")
        with_dead = polls_per_second(c, "good")
        other = c.stats.sources["other"]
        assert with_dead == pytest.approx(normal, rel=0.1), (with_dead, normal)
        assert other.up and other.overruns == 0
        assert not c.stats.sources["hung"].up and not c.stats.sources["absent"].up
        assert c.stats.sources["absent"].errors["connect"] >= 2, "kept retrying with backoff"
        assert c.stats.sources["good"].overruns == 0
        running.stop()
    finally:
        hung.close()
        stop_server(servers, good_server)
        stop_server(servers, other_server)
        broker.stop()
