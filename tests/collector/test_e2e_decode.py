"""Acceptance 1: every data type and byte/word order, over Modbus TCP, Modbus RTU (pty pair) and
OPC UA, decodes end to end (poll -> durable queue -> Mosquitto -> hazmon.wire) to what the servers
hold. Acceptance 4 rides along: the live /metrics pass `promtool check metrics`."""

from __future__ import annotations

import itertools
import subprocess
import time

import pytest
from collector_harness import GATEWAY, base_config
from collector_sims import (
    Broker,
    Receiver,
    RegisterMap,
    metric,
    pty_pair,
    scrape,
    start_modbus_rtu,
    start_modbus_tcp,
    start_opcua,
    stop_server,
    wait_for,
)
from pymodbus.client.mixin import ModbusClientMixin

pytestmark = pytest.mark.integration

DT = ModbusClientMixin.DATATYPE
# (type, raw value, scale, offset): extremes and signs that a wrong decoder gets wrong.
VALUES = [
    ("int16", -12345, 0.1, -5.0),
    ("uint16", 54321, 1.0, 0.0),
    ("int32", -123456789, 0.001, 0.0),
    ("uint32", 3_000_000_017, 1.0, 0.0),
    ("float32", 12.375, 1.0, 0.0),
    ("float64", -98765.43210987, 1.0, 100.0),
]
ORDERS = list(itertools.product(("big", "little"), ("big", "little")))  # (byte, word)
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}


def _registers(dtype: str, raw: float, byte_order: str, word_order: str) -> list[int]:
    """Independent reference: pymodbus' own encoder (big bytes), then swap bytes for byte_order=little."""
    regs = ModbusClientMixin.convert_to_registers(raw, getattr(DT, dtype.upper()), word_order=word_order)
    if byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


def modbus_tags(prefix: str) -> tuple[list[dict], list[int], dict[str, float]]:
    tags, holding, expected = [], [], {}
    for (dtype, raw, scale, offset), (bo, wo) in itertools.product(VALUES, ORDERS):
        code = f"{prefix}-{dtype}-{bo[0]}{wo[0]}"
        tags.append({"code": code, "register": len(holding), "type": dtype, "byte_order": bo,
                     "word_order": wo, "scale": scale, "offset": offset, "interval": 0.2})
        holding.extend(_registers(dtype, raw, bo, wo))
        expected[code] = raw * scale + offset
    # one input-register tag: the other function table (0x04)
    tags.append({"code": f"{prefix}-input", "register": 3, "function": "input", "type": "uint16",
                 "interval": 0.2})
    expected[f"{prefix}-input"] = 4242.0
    return tags, holding, expected


def test_every_type_and_order_end_to_end(tmp_path, servers, run_collector):
    tcp_tags, tcp_regs, expected = modbus_tags("tcp")
    rtu_tags, rtu_regs, rtu_expected = modbus_tags("rtu")
    expected.update(rtu_expected)
    inputs = [0, 0, 0, 4242, 0, 0, 0, 0]
    tcp_server, tcp_port = start_modbus_tcp(servers, RegisterMap(tcp_regs, inputs))
    opc_values = {"LT_301": 7.25, "TT_301": -40.5, "PT_301": 1234, "ST_301": True}
    from asyncua import ua

    opc = start_opcua(servers, {"LT_301": ua.Variant(7.25, ua.VariantType.Float),
                                "TT_301": ua.Variant(-40.5, ua.VariantType.Double),
                                "PT_301": ua.Variant(1234, ua.VariantType.Int16),
                                "ST_301": ua.Variant(True, ua.VariantType.Boolean)})
    opc_tags = [{"code": f"opc-{k}", "node": opc.nodes[k], "interval": 0.2,
                 "scale": 0.01 if k == "PT_301" else 1.0} for k in opc_values]
    expected.update({"opc-LT_301": 7.25, "opc-TT_301": -40.5, "opc-PT_301": 12.34, "opc-ST_301": 1.0})
    broker = Broker(tmp_path)
    broker.start()
    with pty_pair(tmp_path) as (tty_gw, tty_dcs):
        rtu_server = start_modbus_rtu(servers, RegisterMap(rtu_regs, inputs), tty_dcs)
        receiver = Receiver(broker.port)
        try:
            cfg = base_config(tmp_path, broker.port, [
                {"name": "dcs", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": tcp_port,
                 "slave_id": 1, "tags": tcp_tags},
                {"name": "gds", "protocol": "modbus_rtu", "slave_id": 1, "timeout": 1,
                 "serial": {"port": tty_gw, "baud": 115200, "parity": "N", "data_bits": 8, "stop_bits": 1},
                 "tags": rtu_tags},
                {"name": "sis", "protocol": "opc", "opc": {"endpoint": opc.url}, "timeout": 3, "tags": opc_tags},
            ])
            running = run_collector(cfg)
            wait_for(lambda: set(expected) <= set(receiver.latest()), 60, "a sample of every tag")
            got = receiver.latest()
            for code, value in expected.items():
                assert got[code] == pytest.approx(value, rel=1e-6), code
            assert not receiver.errors

            # Acceptance 4: the exposition passes promtool's linter, and says what happened.
            text = scrape(running.collector.metrics_port)
            check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                                   text=True, timeout=30)
            assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), (
                check.stdout + check.stderr)
            for src, proto in (("dcs", "modbus_tcp"), ("gds", "modbus_rtu"), ("sis", "opc")):
                assert metric(text, "hazmon_collector_source_up", f'protocol="{proto}",source="{src}"') == 1
                last = metric(text, "hazmon_collector_source_last_poll_success_timestamp_seconds",
                              f'source="{src}"')
                assert time.time() - 30 < last <= time.time()
                assert metric(text, "hazmon_collector_samples_read_total", f'source="{src}"') > 0
            assert 'hazmon_collector_samples_dropped_total{reason="queue_full"} 0.0' in text
            assert "hazmon_collector_uplink_connected 1.0" in text
            assert f'gateway="{GATEWAY}"' in text
            running.stop()
        finally:
            receiver.close()
            stop_server(servers, rtu_server)
            stop_server(servers, tcp_server)
            servers.run(opc.server.stop())
            broker.stop()
