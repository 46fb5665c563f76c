"""What one gateway or AI box needs from the inventory model, derived on the control node.

Host variables stay lean (the model holds tag tables, cameras, data sources), so the roles ask
here, once per play batch for all its hosts: the action plugin hazmon_derive
(plugins/action/hazmon_derive.py, run_once) calls derive_many inside ansible's own process, where
the inventory plugin has already imported the model; the command line gives the same:

    python -m hazmon.rollout.gateway --inventory DIR HOST [HOST...] [--management-prefix 16]
                                     [--metrics-port 9920] [--secrets-dir DIR] [--no-collector]

prints one JSON object keyed by host name. A host the model cannot derive gets {"error": reason}
instead, so that the role fails that host alone (a failing enterprise stops only itself). Each
host's object holds:

- `management_networks`: where SSH and scrapes may come from: every platform address widened to
  `--management-prefix` (the province's e-government segment; city networks are the role's
  gateway_base_management_networks_extra, the inventory does not describe them).
- `output`: the flows the box itself opens, each {proto, address, port, comment}: the province
  broker (gateways and AI boxes), NTP, the package mirror, and the field devices of its role: the
  DCS data sources of a data-acquisition gateway (D1a, D1c; an RS-485 line D1b needs no network),
  the NVRs an AI box pulls video from (RTSP).
- `collector` (a data-acquisition gateway with data sources): its config as YAML (rendered by
  hazmon.collector.render, the metrics bound to the gateway's own address so that the province's
  Prometheus can scrape it), the secret files it names with the vault variable holding each,
  its serial ports and its sources' protocols (which wheelhouse profile it needs).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Network, collapse_addresses, ip_address
from pathlib import Path
from urllib.parse import urlsplit

from hazmon.inventory.ansible import ROLE_ACCESS_GATEWAY, ROLE_AI_BOX, ROLE_DAQ_GATEWAY, host_name
from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Enterprise, Platform, Protocol
from hazmon.inventory.secrets import mqtt_credential

BOX_ROLES = (ROLE_ACCESS_GATEWAY, ROLE_DAQ_GATEWAY, ROLE_AI_BOX)
OPC_DEFAULT_PORT = 4840  # OPC UA's IANA port, when an endpoint names none
RTSP_PORT = 554
NTP_PORT = 123
DEFAULT_METRICS_PORT = 9920
# The collector reads its secrets from systemd's credentials directory (LoadCredential=): the files
# the role writes under /etc/hazmon-collector/secrets stay root's, the service sees a private copy.
DEFAULT_SECRETS_DIR = Path("/run/credentials/hazmon-collector.service")


class GatewayError(ValueError):
    """The host cannot be derived from the inventory (names the host and the reason)."""


@dataclass(frozen=True)
class Flow:
    proto: str  # tcp | udp
    address: str
    port: int
    comment: str
    kind: str  # uplink (the broker) | ntp | mirror | field (the site's own devices)


def find_box(inv: Inventory, host: str) -> tuple[Enterprise, str]:
    """The enterprise and role of the Ansible host `host` (a gateway or AI box)."""
    for ent in inv.enterprises:
        for role in BOX_ROLES:
            if getattr(ent.devices, role) is not None and host_name(ent, role) == host:
                return ent, role
    raise GatewayError(f"{host}: no gateway or AI box of that Ansible host name in {inv.root}")


def platform_addresses(platform: Platform) -> list[IPv4Address]:
    addrs = [platform.mqtt.host, platform.sip.host, platform.prometheus.host, *platform.ntp]
    addrs += [e.host for e in (platform.alertmanager, platform.tracker) if e is not None]
    if platform.mirror is not None:
        host = _ip(platform.mirror.netloc[0])
        if host is not None:
            addrs.append(host)
    return addrs


def management_networks(platform: Platform, prefix: int) -> list[str]:
    """The platform's addresses widened to `prefix` bits, overlaps merged."""
    if not 8 <= prefix <= 32:
        raise GatewayError(f"management prefix /{prefix}: give 8 to 32 bits")
    nets = (IPv4Network(f"{a}/{prefix}", strict=False) for a in platform_addresses(platform))
    return [str(n) for n in collapse_addresses(nets)]


def _ip(host: str) -> IPv4Address | None:
    try:
        addr = ip_address(host)
    except ValueError:
        return None
    return addr if isinstance(addr, IPv4Address) else None


def field_flows(ent: Enterprise, role: str) -> list[Flow]:
    flows: list[Flow] = []
    if role == ROLE_DAQ_GATEWAY:
        for src in ent.data_sources:
            if src.protocol is Protocol.MODBUS_TCP and src.host is not None and src.port is not None:
                flows.append(Flow("tcp", str(src.host), src.port, f"data source {src.name} (Modbus TCP, D1c)", "field"))
            elif src.protocol is Protocol.OPC and src.opc is not None and src.opc.endpoint:
                url = urlsplit(src.opc.endpoint)
                host = url.hostname or (str(src.opc.server) if src.opc.server else "")
                if _ip(host) is None:
                    raise GatewayError(f"enterprise {ent.code} data source {src.name}: OPC endpoint host {host!r} "
                                       "is not an IPv4 address; the firewall opens addresses only")
                flows.append(Flow("tcp", host, url.port or OPC_DEFAULT_PORT, f"data source {src.name} (OPC UA, D1a)",
                                  "field"))
    elif role == ROLE_AI_BOX:
        for nvr in ent.devices.nvrs:
            flows.append(Flow("tcp", str(nvr.address), RTSP_PORT, f"NVR {nvr.name} video (RTSP)", "field"))
    return flows


def output_flows(platform: Platform, ent: Enterprise, role: str) -> list[Flow]:
    flows: list[Flow] = []
    if role in (ROLE_DAQ_GATEWAY, ROLE_AI_BOX):
        flows.append(Flow("tcp", str(platform.mqtt.host), platform.mqtt.port, "province broker (MQTT)", "uplink"))
    flows += [Flow("udp", str(a), NTP_PORT, "platform NTP", "ntp") for a in platform.ntp]
    if platform.mirror is not None:
        host, port = platform.mirror.netloc
        if _ip(host) is None:
            raise GatewayError(f"platform.mirror.url: host {host!r} is not an IPv4 address; the firewall opens "
                               "addresses only (give the mirror by address, or its flow in "
                               "gateway_base_firewall_output_extra and gateway_base_dns_servers)")
        flows.append(Flow("tcp", host, port, "province package mirror", "mirror"))
    flows += field_flows(ent, role)
    unique: dict[tuple[str, str, int], Flow] = {}
    for f in flows:
        unique.setdefault((f.proto, f.address, f.port), f)
    return list(unique.values())


def collector_part(inv: Inventory, ent: Enterprise, metrics_port: int, secrets_dir: Path,
                   clock_sync_wait: float | None = None) -> dict[str, object]:
    from hazmon.collector.config import ClockConfig, MetricsConfig, dump_yaml
    from hazmon.collector.render import render_config

    box = ent.devices.daq_gateway
    assert box is not None
    cfg = render_config(inv, ent, secrets=secrets_dir)
    update: dict[str, object] = {"metrics": MetricsConfig(host=str(box.address), port=metrics_port)}
    if clock_sync_wait is not None:
        update["clock"] = ClockConfig(sync_wait=clock_sync_wait)
    cfg = cfg.model_copy(update=update)
    secrets: list[dict[str, str]] = []
    if cfg.mqtt.password_file is not None:
        secrets.append({"name": cfg.mqtt.password_file.name, "var": mqtt_credential(ent)})
    by_name = {s.name: s for s in ent.data_sources}
    for src in cfg.sources:
        model_opc = by_name[src.name].opc
        if src.opc is not None and src.opc.password_file is not None and model_opc and model_opc.credential:
            secrets.append({"name": src.opc.password_file.name, "var": model_opc.credential})
    return {
        "config": dump_yaml(cfg),
        "secrets": secrets,
        "serial_ports": sorted({s.serial.port for s in cfg.sources if s.serial is not None}),
        "protocols": sorted({s.protocol.value for s in cfg.sources}),
        "gateway": cfg.gateway,
        # What the start waits at most for the clock (the role's start check must allow for it).
        "clock_sync_wait": cfg.clock.sync_wait,
    }


def derive(inv: Inventory, host: str, management_prefix: int = 16, metrics_port: int = DEFAULT_METRICS_PORT,
           secrets_dir: Path = DEFAULT_SECRETS_DIR, collector: bool = True,
           clock_sync_wait: float | None = None) -> dict[str, object]:
    if inv.province is None:
        raise GatewayError(f"{inv.root}: no province.yml: the platform's addresses are unknown")
    ent, role = find_box(inv, host)
    platform = inv.province.platform
    out: dict[str, object] = {
        "host": host,
        "role": role,
        "enterprise": ent.code,
        "management_networks": management_networks(platform, management_prefix),
        "output": [asdict(f) for f in output_flows(platform, ent, role)],
        "collector": None,
    }
    if collector and role == ROLE_DAQ_GATEWAY and ent.data_sources:
        out["collector"] = collector_part(inv, ent, metrics_port, secrets_dir, clock_sync_wait)
    return out


def derive_many(inv: Inventory, hosts: list[str], management_prefix: int = 16,
                metrics_port: int = DEFAULT_METRICS_PORT, secrets_dir: Path = DEFAULT_SECRETS_DIR,
                collector: bool = True, clock_sync_wait: float | None = None) -> dict[str, dict[str, object]]:
    """`derive` for each host; a host that cannot be derived gets {"error": reason}, so that the
    roles fail that host alone (a failing enterprise stops only itself)."""
    from hazmon.collector.config import ConfigError

    out: dict[str, dict[str, object]] = {}
    for host in hosts:
        try:
            out[host] = derive(inv, host, management_prefix, metrics_port, secrets_dir, collector=collector,
                               clock_sync_wait=clock_sync_wait)
        except (GatewayError, ConfigError) as exc:
            out[host] = {"error": str(exc)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hazmon.rollout.gateway", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hosts", nargs="+", metavar="host", help="Ansible host names, e.g. labe0001-daq")
    p.add_argument("--inventory", type=Path, required=True, help="the inventory folder")
    p.add_argument("--management-prefix", type=int, default=16)
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT)
    p.add_argument("--secrets-dir", type=Path, default=DEFAULT_SECRETS_DIR)
    p.add_argument("--no-collector", action="store_true",
                   help="leave out the collector's config (gateway_base needs only the flows)")
    args = p.parse_args(argv)

    from hazmon.inventory.findings import InventoryError
    from hazmon.inventory.validate import load_valid

    try:
        inv, _ = load_valid(args.inventory)
    except InventoryError as exc:
        print(f"hazmon.rollout.gateway: {exc}", file=sys.stderr)
        return 2
    result = derive_many(inv, args.hosts, args.management_prefix, args.metrics_port, args.secrets_dir,
                         collector=not args.no_collector)
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
