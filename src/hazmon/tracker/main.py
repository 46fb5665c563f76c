"""`hazmon-tracker`: run the province-side feed tracker until SIGTERM/SIGINT.

The broker and the listening address default to the inventory's province.platform (mqtt, tracker).
The MQTT password is read from a file or from $HAZMON_TRACKER_MQTT_PASSWORD, never from a flag.
The JSON API's bearer token is read from --api-token-file (mode 0600 or stricter: it is the
vault's TRACKER_API_CREDENTIAL); without it the API refuses every request (/metrics and /healthz
stay open).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path

from hazmon.inventory.findings import InventoryError
from hazmon.inventory.validate import load_valid
from hazmon.tracker.app import AppConfig, TrackerApp
from hazmon.tracker.mqtt import BrokerConfig
from hazmon.tracker.settings import SettingsError, load_settings
from hazmon.tracker.store import StateError

PASSWORD_ENV = "HAZMON_TRACKER_MQTT_PASSWORD"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hazmon-tracker", description=__doc__)
    p.add_argument("--inventory", type=Path, required=True, help="inventory directory (validated at start)")
    p.add_argument("--state", type=Path, required=True, help="SQLite state file (created if missing)")
    p.add_argument("--settings", type=Path, help="YAML thresholds file (see hazmon.tracker.settings)")
    p.add_argument("--broker-host", help="default: province.platform.mqtt.host")
    p.add_argument("--broker-port", type=int, help="default: province.platform.mqtt.port")
    p.add_argument("--client-id", default="hazmon-tracker",
                   help="fixed MQTT client id: the broker keeps this session's queue "
                        "while the tracker is down")
    p.add_argument("--username")
    p.add_argument("--password-file", type=Path,
                   help=f"file holding the MQTT password (else ${PASSWORD_ENV})")
    p.add_argument("--ca-file", type=Path, help="CA bundle for TLS (TLS follows province.platform.mqtt.tls)")
    p.add_argument("--api-token-file", type=Path,
                   help="file (mode 0600) holding the bearer token the JSON API requires; without it the API "
                        "refuses every request")
    p.add_argument("--listen-host", help="default: province.platform.tracker.host")
    p.add_argument("--listen-port", type=int, help="default: province.platform.tracker.port")
    p.add_argument("--evaluate-every", type=float, help="seconds between evaluations (default 5)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file:
        return args.password_file.read_text(encoding="utf-8").strip()
    return os.environ.get(PASSWORD_ENV)


def read_api_token(path: Path) -> str:
    """The API token from its file; SettingsError naming the file if it is readable by others,
    empty, or not one word of printable ASCII (an HTTP header carries it)."""
    if path.stat().st_mode & 0o077:
        raise SettingsError(f"{path}: the API token file must not be readable by group or others (chmod 600)")
    token = path.read_text(encoding="utf-8").strip()
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise SettingsError(f"{path}: the API token must be one word of printable ASCII")
    return token


def config_from_args(args: argparse.Namespace) -> AppConfig:
    settings = load_settings(args.settings)
    if args.evaluate_every is not None:
        settings = settings.model_copy(update={"evaluate_every_seconds": args.evaluate_every})
    inv, _ = load_valid(args.inventory)
    platform = inv.province.platform if inv.province else None
    mqtt, listen = (platform.mqtt, platform.tracker) if platform else (None, None)
    host = args.broker_host or (str(mqtt.host) if mqtt else None)
    port = args.broker_port or (mqtt.port if mqtt else None)
    if host is None or port is None:
        raise SettingsError(f"{args.inventory}: province.platform.mqtt is not set; "
                            "give --broker-host/--broker-port")
    broker = BrokerConfig(host, port, args.client_id, args.username, _password(args),
                          tls=bool(mqtt and mqtt.tls), ca_file=args.ca_file)
    listen_host = args.listen_host or (str(listen.host) if listen else "127.0.0.1")
    listen_port = args.listen_port if args.listen_port is not None else (listen.port if listen else 9910)
    token = read_api_token(args.api_token_file) if args.api_token_file else None
    return AppConfig(args.inventory, args.state, broker, listen_host, listen_port, settings, api_token=token)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("hazmon.tracker")
    try:
        app = TrackerApp(config_from_args(args))
    except (InventoryError, SettingsError, StateError, OSError) as exc:
        print(f"hazmon-tracker: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # the state file locked by another process, a full disk, ...
        print(f"hazmon-tracker: {args.state}: {exc}", file=sys.stderr)
        return 2
    # The inventory model and restored state live as long as the process (440k tags: millions of
    # objects): keep them out of the collector's full passes, which otherwise stall ingest.
    gc.freeze()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    app.start()
    log.info("tracking %d enterprises; broker %s:%d; http %s:%d", len(app.tracker.state.enterprises),
             app.config.broker.host, app.config.broker.port, app.config.listen_host, app.http.port)
    if app.config.api_token is None:
        log.warning("no --api-token-file: the JSON API refuses every request (/metrics and /healthz are open)")
    done.wait()
    log.info("stopping: committing state")
    app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
