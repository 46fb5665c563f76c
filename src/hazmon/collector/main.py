"""`hazmon-collector`: run the gateway agent, check a config, or render one from the inventory.

systemd-friendly: logs go to stderr (the journal), a bad config exits 2 before anything starts,
SIGTERM stops cleanly (pollers stop, the uplink flushes for queue.flush_timeout, the queue closes).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from hazmon.collector.config import CollectorConfig, ConfigError, dump_yaml, load_config, read_secret

log = logging.getLogger("hazmon.collector")

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hazmon-collector", description=__doc__)
    p.add_argument("-c", "--config", type=Path, help="collector config (YAML or JSON)")
    p.add_argument("--check", action="store_true", help="validate the config and its secret files, then exit")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--render", metavar="ENTERPRISE",
                   help="print the config of ENTERPRISE (code or slug) rendered from --inventory")
    p.add_argument("--inventory", type=Path, help="inventory root, for --render")
    return p


def _check_secrets(cfg: CollectorConfig) -> None:
    if cfg.mqtt.password_file is not None:
        read_secret(cfg.mqtt.password_file, "mqtt.password_file")
    for src in cfg.sources:
        if src.opc and src.opc.password_file:
            read_secret(src.opc.password_file, f"sources.{src.name}.opc.password_file")


def _render(args: argparse.Namespace) -> int:
    from hazmon.collector.render import render_config
    from hazmon.inventory.findings import InventoryError
    from hazmon.inventory.validate import load_valid

    if args.inventory is None:
        print("hazmon-collector: --render needs --inventory", file=sys.stderr)
        return EXIT_CONFIG
    try:
        inv, _ = load_valid(args.inventory)
        sys.stdout.write(dump_yaml(render_config(inv, args.render)))
    except (InventoryError, ConfigError) as exc:
        print(f"hazmon-collector: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


async def _serve(cfg: CollectorConfig) -> None:
    from hazmon.collector.service import Collector

    collector = Collector(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await collector.run(stop)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level,
                        format="%(levelname)s %(name)s: %(message)s")  # journald adds the time
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # its own errors are reported by the poller
    logging.getLogger("asyncua").setLevel(logging.WARNING)  # INFO logs every read: a line a second per source
    if args.render:
        return _render(args)
    if args.config is None:
        print("hazmon-collector: --config is required", file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = load_config(args.config)
        _check_secrets(cfg)
    except ConfigError as exc:
        print(f"hazmon-collector: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"{args.config}: OK ({len(cfg.sources)} source(s), "
              f"{sum(len(s.tags) for s in cfg.sources)} tag(s))")
        return 0
    try:
        asyncio.run(_serve(cfg))
    except ConfigError as exc:
        print(f"hazmon-collector: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
