"""The typed inventory model: what one province, its cities and enterprises look like.

The model only says what a well-formed record is (types, enums, ranges). Rules that span
fields or records, and every rule the notice makes, live in `hazmon.inventory.rules` so that
each can carry its requirement ID (see ../shared/requirements/REQUIREMENTS.md).
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Address as _IPv4Address
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Strict(BaseModel):
    """Base for every record: unknown keys are typos, and typos are errors; a number is finite
    (YAML's .nan and .inf, or 1e400, are no instrument's range, scale or set point: NaN compares
    false with everything, so no rule would ever see it).

    Mutable defaults (lists, records) are given as default_factory: pydantic deep-copies a default
    value for every record that omits it (about 100,000 copies at national scale)."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True, allow_inf_nan=False)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


@lru_cache(maxsize=1 << 16)
def _quad(text: str) -> _IPv4Address:
    a, b, c, d = text.split(".")
    return _IPv4Address(int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d))


def _fast_ipv4(value: object) -> object:
    """A dotted quad made an IPv4Address quickly; anything else goes to pydantic's own validator
    unchanged, so that errors stay pydantic's. ipaddress parses each octet in Python (about a
    tenth of loading 72,000 addresses at national scale); the regex accepts exactly what it does
    (ASCII digits, no leading zeros), and addresses repeat (camera subnets): IPv4Address is
    immutable, so one object per text is safe to share."""
    if type(value) is str and _DOTTED_QUAD.fullmatch(value):
        return _quad(value)
    return value


IPv4Address = Annotated[_IPv4Address, BeforeValidator(_fast_ipv4)]
Mbps = Annotated[float, Field(ge=0)]
Digits20 = Annotated[str, Field(pattern=r"^\d{20}$")]


class Programme(StrEnum):
    """S1: the four networked programmes (major hazards and key processes counted apart)."""

    MAJOR_HAZARD = "major_hazard"
    KEY_PROCESS = "key_process"
    FIREWORKS = "fireworks"
    PIPELINE = "pipeline"
    TAILINGS_POND = "tailings_pond"


class State(StrEnum):
    """Recorded rollout progress. `ready` is never recorded: it is derived (readiness.py)."""

    SURVEYED = "surveyed"
    PROVISIONED = "provisioned"
    VERIFIED = "verified"
    ONLINE = "online"


class Lifecycle(StrEnum):
    """The lifecycle an operator sees: the recorded state plus the derived `ready`."""

    SURVEYED = "surveyed"
    READY = "ready"
    PROVISIONED = "provisioned"
    VERIFIED = "verified"
    ONLINE = "online"


class Annotation(StrEnum):
    """R4: the notice's annotations (计划投产、短期停产、长期停产、保密)."""

    PLANNED_PRODUCTION = "planned_production"
    SHORT_TERM_SHUTDOWN = "short_term_shutdown"
    LONG_TERM_SHUTDOWN = "long_term_shutdown"
    CONFIDENTIAL = "confidential"


class LocationKind(StrEnum):
    """Where a camera looks (S4, V4, V5)."""

    TANK_FARM = "tank_farm"
    WAREHOUSE = "warehouse"
    PRODUCTION_UNIT = "production_unit"
    DUTY_ROOM = "duty_room"
    FW_WORKSHOP_11 = "fw_workshop_1_1"
    FW_WAREHOUSE_11 = "fw_warehouse_1_1"
    FW_DRYING_YARD = "fw_drying_yard_entrance"
    OTHER = "other"


class TagKind(StrEnum):
    LEVEL = "level"
    TEMPERATURE = "temperature"
    PRESSURE = "pressure"
    FLOW = "flow"
    COMBUSTIBLE_GAS = "combustible_gas"
    TOXIC_GAS = "toxic_gas"
    OXYGEN = "oxygen"
    VALVE = "valve"
    STATUS = "status"
    OTHER = "other"


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"


REGISTER_WIDTH: dict[DataType, int] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}


# The raw integer range of each integer type (floats are bounded by the instrument range).
INT_BOUNDS: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
}


def raw_span(scale: float, offset: float, low: float, high: float) -> tuple[float, float]:
    """The raw register values an engineering range needs: raw = (value - offset) / scale."""
    a, b = (low - offset) / scale, (high - offset) / scale
    return (a, b) if a <= b else (b, a)


class Protocol(StrEnum):
    """D1: the three ways a DCS/GDS may offer its data."""

    OPC = "opc"  # D1a, reached as OPC UA (OPC DA through the enterprise's UA bridge)
    MODBUS_RTU = "modbus_rtu"  # D1b
    MODBUS_TCP = "modbus_tcp"  # D1c


# ---------------------------------------------------------------- province and cities


class Endpoint(Strict):
    host: IPv4Address
    port: int = Field(ge=1, le=65535)


class MqttEndpoint(Endpoint):
    tls: bool = False


class SipServer(Endpoint):
    server_id: Digits20
    domain: str = Field(pattern=r"^\d{10}$")
    transport: Literal["udp", "tcp"] = "udp"
    # Where the platform publishes which devices have registered (JSON over HTTP), if it does:
    # the rollout's nvr role waits there until an NVR it configured has registered.
    status_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    # N8: whether the platform keeps a registration password per device (true: each NVR has its own,
    # vault_sip_<slug>_<nvr>, hazmon.inventory.secrets.sip_credential) or one for the province
    # (false: vault_sip_password). Only the platform team can say which its SIP server allows.
    per_device_passwords: bool = False


class MirrorEndpoint(Strict):
    """The province's Debian package mirror: gateways reach no Internet, only the province (N1/N2)."""

    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")  # the archive root, as in an apt source line
    suite: str = "bookworm"
    components: list[str] = Field(default=["main"], min_length=1)

    @property
    def netloc(self) -> tuple[str, int]:
        """(host, port) the mirror listens on."""
        parts = urlsplit(self.url)
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


class Platform(Strict):
    mqtt: MqttEndpoint
    sip: SipServer
    ntp: list[IPv4Address] = Field(min_length=1)
    prometheus: Endpoint
    alertmanager: Endpoint | None = None
    tracker: Endpoint | None = None
    mirror: MirrorEndpoint | None = None  # absent: hosts use the apt sources they have


class Province(Strict):
    code: str = Field(pattern=r"^\d{2}$")
    name: str
    platform: Platform


class Uplink(Strict):
    """N1: the city's e-government extranet uplink."""

    contracted_mbps: Mbps
    measured_mbps: Mbps | None = None
    measured_on: date | None = None


class Contact(Strict):
    name: str
    role: str = "ops"
    phone: str | None = None
    email: str | None = None


class City(Strict):
    code: str = Field(pattern=r"^\d{4}$")
    name: str
    en: str | None = None
    uplink: Uplink
    contacts: list[Contact] = Field(default_factory=list)


# ---------------------------------------------------------------- enterprise parts


class Route(Strict):
    """S3: how the enterprise reaches the platform: through its city, or a parent company."""

    via: Literal["city", "parent_company"] = "city"
    parent_company: str | None = None


class DedicatedLine(Strict):
    """N2: the enterprise's dedicated line (专线) to the city or the parent company."""

    contracted_mbps: Mbps
    measured_mbps: Mbps | None = None
    measured_on: date | None = None
    carrier: str | None = None
    circuit_id: str | None = None


class Site(Strict):
    control_room_links: int = Field(ge=0)  # N3
    cabinet_units_free: int = Field(ge=0)  # N5


class RegistryRecord(Strict):
    """How a hazard source is recorded in one registration system (R1)."""

    hazard_class: str = Field(alias="class")
    grade: int = Field(ge=1, le=4)
    key_processes: list[str] = Field(default_factory=list)


class Registration(Strict):
    registry: RegistryRecord | None = None  # 危险化学品登记信息管理系统
    platform: RegistryRecord | None = None  # 四川省危险化学品安全风险监管信息平台


class HazardSource(Strict):
    code: str = Field(min_length=1)
    name: str
    hazard_class: str = Field(alias="class")  # R2: 装置 / 罐区 / 库区
    grade: int = Field(ge=1, le=4)
    key_processes: list[str] = Field(default_factory=list)
    registration: Registration = Field(default_factory=Registration)


class Box(Strict):
    """A province-supplied 1U box (N4, D6): access gateway, data-acquisition gateway, AI box."""

    address: IPv4Address
    serial: str | None = None
    rack_units: int = Field(default=1, ge=1)
    model: str | None = None


class IsapiAccess(Strict):
    """How the control node reaches an NVR's ISAPI (N8): HTTPS with a verified certificate unless
    the device has none; over plain HTTP no secret is ever sent (hazmon.devices.isapi)."""

    scheme: Literal["https", "http"] = "https"
    port: int | None = Field(default=None, ge=1, le=65535)  # None: the scheme's own (443, 80)

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (443 if self.scheme == "https" else 80)


class Nvr(Strict):
    name: str
    vendor: str
    model: str | None = None
    gb28181: bool  # V2
    channels: int = Field(ge=1)
    address: IPv4Address
    device_id: Digits20 | None = None
    credential: str  # name of a vault variable, never the password itself
    rack_units: int = Field(default=1, ge=0)
    isapi: IsapiAccess = Field(default_factory=IsapiAccess)


class SwitchPort(Strict):
    name: str
    connected: str | None = None  # "ai_box", "nvr:<name>", free text for other devices, None = free
    vlan: int | None = Field(default=None, ge=1, le=4094)


class Switch(Strict):
    """The enterprise's monitoring switch, managed over SSH through netmiko."""

    name: str
    vendor: Literal["huawei", "h3c"]
    device_type: Literal["huawei", "hp_comware"]
    address: IPv4Address
    credential: str
    rack_units: int = Field(default=1, ge=0)
    vlan: int = Field(default=100, ge=1, le=4094)
    ports: list[SwitchPort] = Field(default_factory=list)


class OtherDevice(Strict):
    name: str
    kind: str
    rack_units: int = Field(default=0, ge=0)
    address: IPv4Address | None = None


class Devices(Strict):
    access_gateway: Box | None = None
    daq_gateway: Box | None = None
    ai_box: Box | None = None
    nvrs: list[Nvr] = Field(default_factory=list)
    switch: Switch | None = None
    other: list[OtherDevice] = Field(default_factory=list)


class Camera(Strict):
    name: str
    address: IPv4Address  # V1: must be in 192.168.0.0/16
    nvr: str
    channel: int = Field(ge=1)
    channel_id: Digits20 | None = None
    location: LocationKind
    covers: str | None = None  # a hazard-source code or a fireworks place name (V4, V5)


class FireworksPlace(Strict):
    """V4: a place of a fireworks producer that must be on video."""

    name: str
    kind: Literal["fw_workshop_1_1", "fw_warehouse_1_1", "fw_drying_yard_entrance"]


class Tag(Strict):
    """One monitoring point (位号) of a data source's tag table."""

    code: str = Field(min_length=1)
    hazard_source: str
    kind: TagKind
    reg: int | None = Field(default=None, alias="register", ge=0, le=65535)  # Modbus, 0-based
    function: Literal["holding", "input"] = "holding"
    node: str | None = None  # OPC UA node id
    type: DataType = DataType.FLOAT32
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str
    range_min: float
    range_max: float
    alarm_low_low: float | None = None
    alarm_low: float | None = None
    alarm_high: float | None = None  # gas: level-1 alarm (GB/T 50493)
    alarm_high_high: float | None = None  # gas: level-2 alarm
    interval: float = Field(default=1.0, gt=0, le=3600)  # poll interval, seconds


class Serial(Strict):
    port: str | None = None
    baud: int | None = None
    parity: Literal["N", "E", "O"] | None = None
    data_bits: Literal[7, 8] | None = None
    stop_bits: Literal[1, 2] | None = None


class Opc(Strict):
    endpoint: str | None = None  # opc.tcp://host:port/path of the server or its UA bridge
    server: IPv4Address | None = None
    bridge_installed: bool | None = None
    username: str | None = None
    credential: str | None = None  # vault variable holding the password


class DataSource(Strict):
    """D1: a DCS/GDS offering data. Protocol-specific completeness is rule D1a-c."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    protocol: Protocol
    system: str | None = None  # DCS / GDS / SIS vendor and model
    host: IPv4Address | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    slave_id: int | None = Field(default=None, ge=0, le=247)
    serial: Serial | None = None
    opc: Opc | None = None
    timeout: float = Field(default=1.0, gt=0, le=60)
    tags: list[Tag] = Field(default_factory=list)
    tag_table: str | None = None  # CSV file beside the enterprise file, as DCS vendors export it


class RepairTeam(Strict):
    name: str
    leader: str
    phone: str
    base: str


class GeoPoint(Strict):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    elevation_m: float


class Pipeline(Strict):
    """R5: a hazardous-chemical pipeline (long-distance lines excluded, S1)."""

    name: str
    operator: str | None = None
    medium: str | None = None
    design_throughput_t_per_h: float | None = None
    pressure_mpa: float | None = None
    diameter_mm: float | None = None
    length_km: float | None = None
    points: list[GeoPoint] = Field(default_factory=list)
    repair_team: RepairTeam | None = None


class Enterprise(Strict):
    code: str = Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")  # unified social credit code
    name: str
    city: str = Field(pattern=r"^\d{4}$")
    programmes: list[Programme] = Field(min_length=1)
    batch: int | None = Field(default=None, ge=1)
    state: State = State.SURVEYED
    annotations: list[Annotation] = Field(default_factory=list)
    route: Route = Field(default_factory=Route)
    line: DedicatedLine
    site: Site
    hazard_sources: list[HazardSource] = Field(default_factory=list)
    fireworks_places: list[FireworksPlace] = Field(default_factory=list)
    devices: Devices = Field(default_factory=Devices)
    cameras: list[Camera] = Field(default_factory=list)
    data_sources: list[DataSource] = Field(default_factory=list)
    pipelines: list[Pipeline] = Field(default_factory=list)

    @property
    def slug(self) -> str:
        """Short host-name-safe handle: the last 8 characters of the code, lower case."""
        return self.code[-8:].lower()

    def has(self, programme: Programme) -> bool:
        return programme in self.programmes

    @property
    def fireworks_only(self) -> bool:
        return set(self.programmes) == {Programme.FIREWORKS}
