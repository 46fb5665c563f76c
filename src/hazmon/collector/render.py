"""Derive a gateway's collector config from the inventory model (nothing reads YAML on its own)."""

from __future__ import annotations

from pathlib import Path

from hazmon.collector.config import (
    CollectorConfig,
    ConfigError,
    MqttConfig,
    OpcConfig,
    SerialConfig,
    SourceConfig,
    TagConfig,
    parse_config,
)
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import DataSource, Enterprise, Protocol

# Where the Ansible role renders secrets from the vault (mode 0600, owner hazmon-collector).
SECRETS_DIR = Path("/etc/hazmon-collector/secrets")


def _tag(tag) -> TagConfig:
    return TagConfig(
        code=tag.code, reg=tag.reg, function=tag.function, node=tag.node, type=tag.type,
        byte_order=tag.byte_order, word_order=tag.word_order, scale=tag.scale, offset=tag.offset,
        interval=tag.interval,
    )


def _source(src: DataSource, secrets: Path) -> SourceConfig:
    data: dict = {
        "name": src.name, "protocol": src.protocol, "timeout": src.timeout,
        "tags": [_tag(t) for t in src.tags],
    }
    if src.slave_id is not None:
        data["slave_id"] = src.slave_id
    if src.protocol is Protocol.MODBUS_TCP:
        data.update(host=str(src.host) if src.host else None, port=src.port)
    elif src.protocol is Protocol.MODBUS_RTU and src.serial is not None:
        s = src.serial
        line = {k: v for k, v in (("port", s.port), ("baud", s.baud), ("parity", s.parity),
                                  ("data_bits", s.data_bits), ("stop_bits", s.stop_bits)) if v is not None}
        data["serial"] = SerialConfig.model_validate(line)
    elif src.protocol is Protocol.OPC and src.opc is not None:
        data["opc"] = OpcConfig(
            endpoint=src.opc.endpoint or "",
            username=src.opc.username,
            password_file=secrets / f"opc-{src.name}.password" if src.opc.credential else None,
        )
    return SourceConfig.model_validate(data)


def render_config(
    inv: Inventory, enterprise: Enterprise | str, secrets: Path = SECRETS_DIR,
    state_dir: Path = Path("/var/lib/hazmon-collector"),
) -> CollectorConfig:
    """The config of one enterprise's gateway. `inv` must come from load_valid (no invalid inventory)."""
    ent = inv.enterprise(enterprise) if isinstance(enterprise, str) else enterprise
    if ent is None:
        raise ConfigError(f"{inv.root}: no enterprise {enterprise!r} in the inventory")
    if inv.province is None:
        raise ConfigError(f"{inv.root}: province.yml gives no platform (platform.mqtt)")
    if not ent.data_sources:
        raise ConfigError(f"{inv.root}: enterprise {ent.code} has no data_sources (D1): nothing to collect")
    mqtt = inv.province.platform.mqtt
    try:
        sources = [_source(s, secrets) for s in ent.data_sources]
    except ValueError as exc:
        raise ConfigError(f"{inv.root}: enterprise {ent.code}: {exc}") from None
    data = {
        "gateway": ent.code,
        "city": ent.city,
        "mqtt": MqttConfig(
            host=str(mqtt.host), port=mqtt.port, tls=mqtt.tls,
            # One broker account per gateway, named after it; the broker ACL limits it to its topics.
            username=ent.code, password_file=secrets / "mqtt.password",
        ),
        "queue": {"path": state_dir / "queue.db"},
        "sources": sources,
    }
    return parse_config(data, f"{inv.root} ({ent.code})")
