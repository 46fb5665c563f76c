"""The six survey tables of R3, described once and used by both export and import.

Each sheet is a list of rows (one per enterprise, or one per record of an enterprise list such
as its cameras) and a list of columns. A column is one of:
- `ent`: the enterprise's unified social credit code, which finds the enterprise on import;
- `key`: the record's own key within the enterprise (hazard-source code, NVR or camera name);
- `edit`: an inventory field (`field`, the YAML path within the row's record), written on export
  and applied on import;
- `info`: derived on export (counts, compliance, remarks) and ignored on import; shown grey.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from hazmon.inventory import notice
from hazmon.inventory.findings import Finding
from hazmon.inventory.model import Annotation, Enterprise
from hazmon.inventory.readiness import Readiness
from hazmon.tables import cells, labels

Kind = Literal["ent", "key", "edit", "info"]
Path_ = tuple[str | int, ...]

CONFIDENTIAL_NOTE = "保密企业：仅限市州与省厅之间报送，不得外传"


def get_in(data: Any, path: Path_) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def record_doc(ent: Enterprise) -> dict[str, Any]:
    """The enterprise as its YAML holds it, minus what no table carries (tag tables are large)."""
    return ent.model_dump(mode="json", by_alias=True, exclude={"data_sources", "pipelines"})


@dataclass(frozen=True, slots=True)
class Row:
    """One row's subject: an enterprise, and the record of it the row describes."""

    ent: Enterprise
    doc: dict[str, Any]  # the enterprise as the YAML holds it (model_dump by alias, JSON mode)
    readiness: Readiness
    findings: tuple[Finding, ...]  # the inventory's findings against this enterprise
    path: Path_  # the record's path within the enterprise, () for the enterprise itself

    @property
    def rec(self) -> dict[str, Any]:
        return get_in(self.doc, self.path) if self.path else self.doc

    @property
    def confidential(self) -> bool:
        return Annotation.CONFIDENTIAL in self.ent.annotations

    def broken(self, rule: str, prefix: str = "") -> bool:
        return any(f.rule == rule and f.path.startswith(prefix) for f in self.findings)


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    kind: Kind
    field: Path_ = ()
    fmt: cells.Formatter = cells.plain
    parse: cells.Parser = cells.text
    get: Callable[[Row], cells.CellValue] | None = None  # info columns
    width: int = 14
    as_text: bool = False  # stored as text so Excel keeps long digit strings
    number_format: str | None = None
    group: Path_ = ()  # edit columns of one optional record: all blank removes the record

    def value(self, row: Row) -> cells.CellValue:
        if self.get is not None:
            return self.get(row)
        return self.fmt(get_in(row.rec, self.field))


@dataclass(frozen=True, slots=True)
class Sheet:
    name: str  # the worksheet's name: the attachment number
    title: str
    records: Path_ | None  # list of records within an enterprise; None: one row per enterprise
    columns: tuple[Column, ...]
    creates_enterprise: bool = False  # a row of an unknown enterprise may create it

    def rows(self, ent: Enterprise, doc: dict[str, Any], ready: Readiness,
             findings: tuple[Finding, ...]) -> list[Row]:
        if self.records is None:
            return [Row(ent, doc, ready, findings, ())]
        items = get_in(doc, self.records) or []
        return [Row(ent, doc, ready, findings, (*self.records, i)) for i in range(len(items))]

    def key_column(self) -> Column | None:
        return next((c for c in self.columns if c.kind == "key"), None)


# ---------------------------------------------------------------- shared columns


def _remarks(extra: Callable[[Row], list[str]] | None = None) -> Column:
    def get(row: Row) -> str | None:
        notes = [CONFIDENTIAL_NOTE] if row.confidential else []
        notes += extra(row) if extra else []
        return "；".join(notes) or None

    return Column("备注", "info", get=get, width=30)


ENT_CODE = Column("统一社会信用代码", "ent", get=lambda r: r.ent.code, width=22, as_text=True)
ENT_NAME = Column("企业名称", "info", get=lambda r: r.ent.name, width=28)


# ---------------------------------------------------------------- 附件3


def _registry_cols(system: str, words: str) -> tuple[Column, ...]:
    group = ("registration", system)
    return (
        Column(f"{words}·类别", "edit", (*group, "class"), group=group),
        Column(f"{words}·等级", "edit", (*group, "grade"), parse=cells.integer("级"), group=group, width=10),
        Column(f"{words}·重点监管工艺", "edit", (*group, "key_processes"), fmt=cells.as_joined,
               parse=cells.split, group=group, width=20),
    )


def _agreement(row: Row) -> str:
    src = row.rec
    facts = (src.get("class"), src.get("grade"), sorted(src.get("key_processes") or []))
    out = []
    for system, words in (("registry", "登记系统"), ("platform", "信息平台")):
        rec = get_in(src, ("registration", system))
        if rec is None:
            out.append(f"未录入{words}")
        elif (rec.get("class"), rec.get("grade"), sorted(rec.get("key_processes") or [])) != facts:
            out.append(f"{words}不一致")
    return "；".join(out) or "一致"


HAZARDS = Sheet(
    "附件3", "重大危险源、危险工艺自查情况反馈表", ("hazard_sources",),
    (
        ENT_NAME, ENT_CODE,
        Column("危险源编码", "key", ("code",), width=16),
        Column("危险源名称", "edit", ("name",), width=20),
        Column("类别", "edit", ("class",), width=8),
        Column("等级", "edit", ("grade",), parse=cells.integer("级"), width=8),
        Column("重点监管工艺", "edit", ("key_processes",), fmt=cells.as_joined, parse=cells.split, width=20),
        *_registry_cols("registry", "登记系统"),
        *_registry_cols("platform", "信息平台"),
        Column("是否一致（R1）", "info", get=_agreement, width=18),
        _remarks(),
    ),
)


# ---------------------------------------------------------------- 附件6


def _sources(row: Row) -> str | None:
    lines = []
    for src in row.ent.data_sources:
        where = f"{src.host}:{src.port}" if src.host else (src.serial.port if src.serial else None)
        where = where or (src.opc.endpoint if src.opc else None)
        parts = [f"{src.name}：{labels.PROTOCOL[src.protocol.value]}", src.system, where, f"{len(src.tags)}个位号"]
        lines.append(" ".join(p for p in parts if p))
    return "\n".join(lines) or None


def _blocking(row: Row) -> str | None:
    rules = sorted({f.rule for f in row.readiness.blocking})
    return "、".join(rules) or None


ENTERPRISES = Sheet(
    "附件6", "企业风险监测预警情况", None,
    (
        ENT_CODE,
        Column("企业名称", "edit", ("name",), width=28),
        Column("联网类别", "edit", ("programmes",), fmt=cells.as_labels(labels.PROGRAMME),
               parse=cells.choices(labels.PROGRAMME, "programme (联网类别)"), width=22),
        Column("批次", "edit", ("batch",), parse=cells.integer("批次"), width=8),
        Column("重大危险源数量", "info", get=lambda r: len(r.ent.hazard_sources), width=10),
        Column("重点监管工艺", "info", width=18,
               get=lambda r: cells.JOIN.join(sorted({p for s in r.ent.hazard_sources for p in s.key_processes}))
               or None),
        Column("DCS/GDS数据源", "info", get=_sources, width=40),
        Column("数据接口方式（D1）", "info", width=20,
               get=lambda r: cells.JOIN.join(sorted({labels.PROTOCOL[s.protocol.value] for s in r.ent.data_sources}))
               or None),
        Column("企业标注（R4）", "edit", ("annotations",), fmt=cells.as_labels(labels.ANNOTATION),
               parse=cells.choices(labels.ANNOTATION, "annotation (标注)"), width=16),
        Column("接入路由（S3）", "edit", ("route", "via"), fmt=cells.as_label(labels.ROUTE),
               parse=cells.choice(labels.ROUTE, "route (接入路由)"), width=12),
        Column("上级公司", "edit", ("route", "parent_company"), width=24),
        Column("进度", "edit", ("state",), fmt=lambda _: None, parse=cells.choice(labels.LIFECYCLE, "stage (进度)"),
               get=lambda r: labels.LIFECYCLE[r.readiness.lifecycle.value], width=10),
        Column("未就绪原因", "info", get=_blocking, width=18),
        _remarks(),
    ),
    creates_enterprise=True,
)


# ---------------------------------------------------------------- 附件7, 附件8


NVRS = Sheet(
    "附件7", "企业NVR设备调研表", ("devices", "nvrs"),
    (
        ENT_NAME, ENT_CODE,
        Column("NVR名称", "key", ("name",), width=10),
        Column("品牌", "edit", ("vendor",), fmt=cells.as_label(labels.VENDOR), parse=cells.open_text(labels.VENDOR),
               width=10),
        Column("型号", "edit", ("model",), width=16),
        Column("支持GB/T 28181（V2）", "edit", ("gb28181",), fmt=cells.as_bool, parse=cells.yes_no, width=12),
        Column("通道数", "edit", ("channels",), parse=cells.integer("通道数"), width=8),
        Column("IP地址", "edit", ("address",), parse=cells.ipv4, width=16),
        Column("国标设备编码", "edit", ("device_id",), parse=cells.digits20, width=24, as_text=True),
        _remarks(lambda r: ["V2：不支持GB/T 28181，需增加或更换NVR"] if r.rec.get("gb28181") is False else []),
    ),
)

CAMERAS = Sheet(
    "附件8", "企业摄像头情况调研表", ("cameras",),
    (
        ENT_NAME, ENT_CODE,
        Column("摄像头名称", "key", ("name",), width=12),
        Column("IP地址（V1）", "edit", ("address",), parse=cells.ipv4, width=16),
        Column("所属NVR", "edit", ("nvr",), width=10),
        Column("通道号", "edit", ("channel",), parse=cells.integer("通道号"), width=8),
        Column("通道国标编码", "edit", ("channel_id",), parse=cells.digits20, width=24, as_text=True),
        Column("监控位置", "edit", ("location",), fmt=cells.as_label(labels.LOCATION),
               parse=cells.choice(labels.LOCATION, "camera location (监控位置)"), width=14),
        Column("监控对象", "edit", ("covers",), width=16),
        _remarks(lambda r: [f"V1：地址不在{notice.V1_CAMERA_NETWORK}内，需改址或更换"]
                 if r.broken("V1", f"cameras[{r.path[-1]}].") else []),
    ),
)


# ---------------------------------------------------------------- 附件9


def _switch(row: Row) -> str | None:
    sw = row.ent.devices.switch
    return f"{sw.name}（{sw.vendor}，{sw.address}）" if sw else None


def _free_ports(row: Row) -> int | None:
    sw = row.ent.devices.switch
    return sum(1 for p in sw.ports if p.connected is None) if sw else None


VIDEO = Sheet(
    "附件9", "企业视频接入情况调研表", None,
    (
        ENT_CODE, ENT_NAME,
        Column("NVR数量", "info", get=lambda r: len(r.ent.devices.nvrs), width=8),
        Column("支持GB/T 28181的NVR数量", "info", get=lambda r: sum(n.gb28181 for n in r.ent.devices.nvrs), width=12),
        Column("摄像头数量", "info", get=lambda r: len(r.ent.cameras), width=10),
        Column("地址合规摄像头数量（V1）", "info", width=12,
               get=lambda r: len(r.ent.cameras) - sum(1 for f in r.findings if f.rule == "V1")),
        Column("监控交换机", "info", get=_switch, width=28),
        Column("交换机空闲端口数", "info", get=_free_ports, width=10),
        Column("空闲端口满足N6", "info", width=10,
               get=lambda r: None if r.ent.devices.switch is None else
               (labels.NO if r.broken("N6") else labels.YES)),
        Column("AI盒子IP地址", "edit", ("devices", "ai_box", "address"), parse=cells.ipv4, width=16),
        Column("AI盒子序列号", "edit", ("devices", "ai_box", "serial"), width=16),
        _remarks(),
    ),
)


# ---------------------------------------------------------------- 附件10


def _topology(row: Row) -> str:
    links = row.ent.site.control_room_links
    return notice.N3_TOPOLOGY_BY_LINKS.get(links, "不具备" if links == 0 else "不符合")


CIRCUITS = Sheet(
    "附件10", "电路开通统计表", None,
    (
        ENT_CODE, ENT_NAME,
        Column("接入路由", "info", width=16,
               get=lambda r: r.ent.route.parent_company or labels.ROUTE[r.ent.route.via]),
        Column("专线签约带宽（Mbps，N2）", "edit", ("line", "contracted_mbps"), parse=cells.number("Mbps"), width=12),
        Column("专线实测带宽（Mbps）", "edit", ("line", "measured_mbps"), parse=cells.number("Mbps"), width=12),
        Column("测量日期", "edit", ("line", "measured_on"), fmt=cells.as_date, parse=cells.day, width=12,
               number_format="yyyy-mm-dd"),
        Column("运营商", "edit", ("line", "carrier"), width=10),
        Column("电路编号", "edit", ("line", "circuit_id"), width=16, as_text=True),
        Column("专线达标（N2）", "info", width=10,
               get=lambda r: labels.NO if r.broken("N2", "line.") else labels.YES),
        Column("机房至中控室链路数（N3）", "edit", ("site", "control_room_links"), parse=cells.integer("链路数"),
               width=12),
        Column("拓扑", "info", get=_topology, width=16),
        Column("机柜空余U数（N5）", "edit", ("site", "cabinet_units_free"), parse=cells.integer("U"), width=10),
        _remarks(),
    ),
    creates_enterprise=True,
)

SHEETS: tuple[Sheet, ...] = (HAZARDS, ENTERPRISES, NVRS, CAMERAS, VIDEO, CIRCUITS)
NOTES_SHEET = "说明"
FIRST_ROW = 3  # row 1: title, row 2: headers
