"""The whole program wired together: tracker, MQTT feed, housekeeping, HTTP. Tests run it in-process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hazmon.tracker.api import HttpServer
from hazmon.tracker.expected import load_expectations
from hazmon.tracker.mqtt import BrokerConfig, MqttFeed
from hazmon.tracker.service import Housekeeper, Tracker
from hazmon.tracker.settings import TrackerSettings


@dataclass(frozen=True)
class AppConfig:
    inventory: Path
    state_file: Path
    broker: BrokerConfig
    listen_host: str
    listen_port: int
    settings: TrackerSettings = field(default_factory=TrackerSettings)
    housekeeping: bool = True  # tests that evaluate by hand turn the timer off
    # The JSON API's bearer token (from the vault, read from --api-token-file); None: the API
    # refuses every request. Not shown in reprs (logs, tracebacks).
    api_token: str | None = field(default=None, repr=False)


class TrackerApp:
    def __init__(self, config: AppConfig) -> None:
        self.config = config
        enterprises = load_expectations(config.inventory, config.settings.thresholds)
        self.tracker = Tracker(enterprises, config.settings, config.state_file)
        self.feed = MqttFeed(self.tracker, config.broker)
        self.http = HttpServer(self.tracker, config.listen_host, config.listen_port, config.api_token)
        self.housekeeper = Housekeeper(self.tracker) if config.housekeeping else None

    def start(self) -> None:
        self.http.start()
        if self.housekeeper is not None:
            self.housekeeper.start()
        self.feed.start()

    def stop(self) -> None:
        if self.housekeeper is not None:
            self.housekeeper.stop()
        self.feed.stop()
        self.http.stop()
        self.tracker.close()

    def __enter__(self) -> TrackerApp:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
