"""Integration: sources come back on their own after their server restarts (the field's classic
failure: OPC UA sessions that never return), counted in errors and connects."""

from __future__ import annotations

import time

import pytest
from asyncua import ua
from collector_harness import base_config
from collector_sims import Broker, Receiver, RegisterMap, start_modbus_tcp, start_opcua, stop_server, wait_for

pytestmark = pytest.mark.integration


def test_opcua_and_modbus_sources_recover_after_server_restart(tmp_path, servers, run_collector):
    regs = RegisterMap([0x4148, 0, 0, 0])
    mb_server, mb_port = start_modbus_tcp(servers, regs)
    opc = start_opcua(servers, {"LT_401": ua.Variant(3.5, ua.VariantType.Double)})
    opc_port = int(opc.url.rsplit(":", 1)[1].split("/")[0])
    broker = Broker(tmp_path)
    broker.start()
    receiver = Receiver(broker.port)
    try:
        cfg = base_config(tmp_path, broker.port, [
            {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": mb_port, "timeout": 0.5,
             "tags": [{"code": "MB", "register": 0, "interval": 0.2}]},
            {"name": "opc", "protocol": "opc", "opc": {"endpoint": opc.url}, "timeout": 1,
             "tags": [{"code": "OPC", "node": opc.nodes["LT_401"], "interval": 0.2}]},
        ])
        c = run_collector(cfg).collector
        wait_for(lambda: {"MB", "OPC"} <= set(receiver.latest()), 30, "both sources")

        stop_server(servers, mb_server)
        servers.run(opc.server.stop())
        wait_for(lambda: not c.stats.sources["dcs"].up and not c.stats.sources["opc"].up, 20, "both down")
        time.sleep(1)
        mb_server, _ = start_modbus_tcp(servers, regs, port=mb_port)
        opc = start_opcua(servers, {"LT_401": ua.Variant(4.5, ua.VariantType.Double)}, port=opc_port)
        t_back = time.time()

        def fresh(tag: str) -> bool:
            return any(s.tag == tag and s.ts > t_back for _src, s in receiver.samples())

        def new_opc_value() -> bool:
            # Not by time: an OPC UA sample carries the server's SourceTimestamp, which the new
            # server set when it made the variable, just before t_back.
            return any(s.tag == "OPC" and s.value == 4.5 for _src, s in receiver.samples())

        wait_for(lambda: fresh("MB") and new_opc_value(), 30, "both sources to come back")
        assert receiver.latest()["OPC"] == 4.5
        for name in ("dcs", "opc"):
            s = c.stats.sources[name]
            assert s.up and s.connects >= 2 and sum(s.errors.values()) >= 1, (name, s)
    finally:
        receiver.close()
        stop_server(servers, mb_server)
        servers.run(opc.server.stop())
        broker.stop()
