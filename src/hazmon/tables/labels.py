"""Chinese labels the survey tables show for the inventory's codes, and their way back.

Import accepts the label or the inventory's own code (so a cell typed as `modbus_tcp` works too).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PROGRAMME = MappingProxyType({
    "major_hazard": "重大危险源",
    "key_process": "重点监管工艺",
    "fireworks": "烟花爆竹",
    "pipeline": "危化品管道",
    "tailings_pond": "尾矿库",
})
ANNOTATION = MappingProxyType({  # R4
    "planned_production": "计划投产",
    "short_term_shutdown": "短期停产",
    "long_term_shutdown": "长期停产",
    "confidential": "保密",
})
LIFECYCLE = MappingProxyType({
    "surveyed": "已调研",
    "ready": "就绪",
    "provisioned": "已部署",
    "verified": "已验证",
    "online": "已上线",
})
LOCATION = MappingProxyType({
    "tank_farm": "罐区",
    "warehouse": "库区",
    "production_unit": "生产装置",
    "duty_room": "值班监控中心",
    "fw_workshop_1_1": "1.1级工房",
    "fw_warehouse_1_1": "1.1级成品仓库",
    "fw_drying_yard_entrance": "晒场入口",
    "other": "其他",
})
PROTOCOL = MappingProxyType({
    "opc": "OPC（D1a）",
    "modbus_rtu": "Modbus RTU（D1b）",
    "modbus_tcp": "Modbus TCP（D1c）",
})
ROUTE = MappingProxyType({"city": "经市州", "parent_company": "经上级公司"})
VENDOR = MappingProxyType({"hikvision": "海康威视", "dahua": "大华"})
YES, NO = "是", "否"


def label(table: Mapping[str, str], code: str | None) -> str | None:
    """The label of a code; a code the table does not know is shown as it is."""
    if code is None:
        return None
    return table.get(code, code)


def code_of(table: Mapping[str, str], text: str) -> str | None:
    """The code of a label (or of the code itself); None when neither is known."""
    text = text.strip()
    if text in table:
        return text
    for code, name in table.items():
        if name == text:
            return code
    return None
