"""The collector's configuration file: one gateway, its uplink and its data sources.

The file is rendered from the inventory by the Ansible role (see render.py). It never holds a
secret: the MQTT and OPC passwords live in files the role renders from the vault (mode 0600),
and the config only names those files.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hazmon.inventory.model import REGISTER_WIDTH, DataType, Protocol

MAX_REGISTERS_PER_READ = 125  # Modbus application protocol: at most 125 registers per 0x03/0x04 read


class ConfigError(ValueError):
    """A configuration the collector refuses to run on; the message names file, field and rule."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# A tag code longer than this is a mistake; the bound keeps one sample far below the wire's message
# limit (wire.MAX_PAYLOAD_BYTES), so that a batch can always be split to fit.
MAX_TAG_CODE_CHARS = 1024


class TagConfig(Strict):
    code: str = Field(min_length=1, max_length=MAX_TAG_CODE_CHARS)
    # "register" in the file, as in the inventory (the name shadows a BaseModel method in Python).
    reg: int | None = Field(default=None, alias="register", ge=0, le=65535)  # Modbus, 0-based
    function: Literal["holding", "input"] = "holding"
    node: str | None = None  # OPC UA node id, e.g. "ns=2;s=LT-101"
    type: DataType = DataType.FLOAT32
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    interval: float = Field(default=1.0, gt=0, le=3600)

    @property
    def width(self) -> int:
        return REGISTER_WIDTH[self.type]


class SerialConfig(Strict):
    port: str
    baud: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    data_bits: Literal[7, 8] = 8
    stop_bits: Literal[1, 2] = 1


class OpcConfig(Strict):
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    username: str | None = None
    password_file: Path | None = None


class SourceConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    protocol: Protocol
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    slave_id: int = Field(default=1, ge=0, le=247)
    serial: SerialConfig | None = None
    opc: OpcConfig | None = None
    timeout: float = Field(default=1.0, gt=0, le=60)
    tags: list[TagConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _protocol_fields(self) -> SourceConfig:
        # D1a-c: what each protocol needs to be reached at all.
        if self.protocol is Protocol.MODBUS_TCP and (self.host is None or self.port is None):
            raise ValueError("D1c: a modbus_tcp source needs host and port")
        if self.protocol is Protocol.MODBUS_RTU and self.serial is None:
            raise ValueError("D1b: a modbus_rtu source needs serial.port (and its line settings)")
        if self.protocol is Protocol.OPC and self.opc is None:
            raise ValueError("D1a: an opc source needs opc.endpoint")
        seen: set[str] = set()
        for tag in self.tags:
            if tag.code in seen:
                raise ValueError(f"tag code {tag.code} appears twice")
            seen.add(tag.code)
            if self.protocol is Protocol.OPC and not tag.node:
                raise ValueError(f"D1a: tag {tag.code} of an opc source needs node")
            if self.protocol is not Protocol.OPC and tag.reg is None:
                raise ValueError(f"D1b/D1c: tag {tag.code} of a modbus source needs register")
            if tag.reg is not None and tag.reg + tag.width > 65536:
                raise ValueError(f"tag {tag.code}: {tag.type} at register {tag.reg} runs past 65535")
        return self


class MqttConfig(Strict):
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None  # None with tls: the system's CA store
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None  # per-gateway account; None = anonymous (lab only)
    password_file: Path | None = None
    client_id: str | None = None  # defaults to the gateway id
    keepalive: int = Field(default=30, ge=5, le=3600)
    max_inflight: int = Field(default=50, ge=1, le=1000)

    @model_validator(mode="after")
    def _auth(self) -> MqttConfig:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class QueueConfig(Strict):
    path: Path = Path("/var/lib/hazmon-collector/queue.db")
    # 1.8 M samples is one hour of 500 tags at 1 Hz; the cap keeps a day of a typical site.
    max_samples: int = Field(default=20_000_000, ge=1)
    # Replay budget: 1 MB/s is 40 % of the 20 Mbps enterprise line (N2), leaving room for live data.
    replay_bytes_per_second: float = Field(default=1_000_000, gt=0)
    # FULL survives a power cut, NORMAL only a process crash; a gateway loses power, so FULL.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # On SIGTERM: wait this long for the queue to empty (PUBACKs, and the province's commits).
    flush_timeout: float = Field(default=10.0, ge=0)
    # Custody (docs/wire.md): `committed` deletes a batch only when the province tracker says it
    # has durably committed it (wire.Committed on the gateway's ack topic); `puback` deletes it on
    # the broker's PUBACK, for a receiver that publishes no committed seqs (plain test receivers).
    delete_on: Literal["committed", "puback"] = "committed"
    # A delivered batch that the province has not committed while batches the broker accepted
    # after it have been is sent again once its PUBACK is this old (the broker lost it). Well
    # above the tracker's commit interval (~1 s) and its per-gateway ack throttle (1 s).
    resend_after: float = Field(default=30.0, gt=0)


class ClockConfig(Strict):
    # At start, wait at most this long for the kernel to report the clock synchronised before
    # polling (samples are stamped with it); 0: do not wait. chrony (iburst) or timesyncd
    # synchronise within seconds of reaching their server; one minute covers a slow first
    # exchange over the dedicated line (N2) and bounds the gap a clock that never synchronises
    # costs. After that the collector polls anyway and says so (log, metrics).
    sync_wait: float = Field(default=60.0, ge=0, le=3600)


class MetricsConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9920, ge=0, le=65535)  # 0: pick a free port (tests)


class BackoffConfig(Strict):
    initial: float = Field(default=0.5, gt=0)
    # Also bounds how late data resumes after an outage: 10 s keeps freshness recovery within one
    # scrape, and a reconnect attempt every 10 s costs nothing on a 20 Mbps line.
    maximum: float = Field(default=10.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)  # fraction of the delay, drawn uniformly


class CollectorConfig(Strict):
    gateway: Annotated[str, Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]  # enterprise code (N4)
    city: Annotated[str, Field(pattern=r"^\d{4}$")]
    mqtt: MqttConfig
    queue: QueueConfig = QueueConfig()
    clock: ClockConfig = ClockConfig()
    metrics: MetricsConfig = MetricsConfig()
    backoff: BackoffConfig = BackoffConfig()
    sources: list[SourceConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_sources(self) -> CollectorConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique (topic per source): {', '.join(dupes)}")
        return self


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_config(data: object, file: Path | str = "<config>") -> CollectorConfig:
    try:
        return CollectorConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{file}: field {_field(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid collector config:\n" + "\n".join(lines)) from None


def load_config(file: Path | str) -> CollectorConfig:
    """Read a YAML or JSON config; every problem names the file and the field."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the collector config: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from None
    return parse_config(data, path)


def dump_yaml(config: CollectorConfig) -> str:
    header = "# hazmon-collector config, rendered from the inventory. No secrets here: see *password_file.\n"
    data = config.model_dump(mode="json", exclude_none=True, by_alias=True)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return header + body


def read_secret(file: Path, field: str) -> str:
    """Read a password file the role rendered from the vault; refuse one that others can read."""
    try:
        mode = file.stat().st_mode
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            raise ConfigError(f"{file}: {field} is readable or writable by others (mode "
                              f"{stat.S_IMODE(mode):04o}); make it 0600")
        return file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read {field}: {exc.strerror}") from None
