# ruff: noqa: E501  (the YAML is a verbatim copy of the lab files)
"""A tiny, valid inventory written into a test's tmp_path: the lab plant plus one shut-down plant.

Self-contained (a copy of the lab's province, Chengdu and plant 0001 as of this writing), so that
the lab inventory can grow without changing what these tests expect.
"""

from __future__ import annotations

from pathlib import Path

LAB_CODE = "91510100MALABE0001"
SHUTDOWN_CODE = "91510100MALABE0902"

PROVINCE = """\
# The province slice the lab builds. Every address is in 198.18.0.0/15 (RFC 2544 test range),
# so no lab address can be mistaken for a real site.
province:
  code: "51"
  name: 四川省
  platform:
    mqtt: {host: 198.18.0.10, port: 1883, tls: false}
    sip:
      server_id: "51000000002006000001"
      domain: "5100000000"
      host: 198.18.0.11
      port: 5060
    ntp: [198.18.0.10]
    prometheus: {host: 198.18.0.12, port: 9090}
    alertmanager: {host: 198.18.0.12, port: 9093}
    tracker: {host: 198.18.0.13, port: 9910}
"""

CHENGDU = """\
code: "5101"
name: 成都市
en: Chengdu
uplink: {contracted_mbps: 100, measured_mbps: 100, measured_on: 2026-11-01}
contacts:
  - {name: 成都值班室, role: duty, phone: "028-00000000"}
"""

PLANT = """\
# A chemical plant with a tank farm and a hydrogenation unit; its DCS offers Modbus TCP (D1c).
code: 91510100MALABE0001
name: 成都实验化工有限公司
city: "5101"
programmes: [major_hazard, key_process]
batch: 1
line: {contracted_mbps: 20, measured_mbps: 20, carrier: 中国电信, circuit_id: CD-LAB-0001, measured_on: 2026-11-01}
site: {control_room_links: 3, cabinet_units_free: 16}
hazard_sources:
  - code: HS-0001-TK
    name: 1号罐区
    class: 罐区
    grade: 2
    registration:
      registry: {class: 罐区, grade: 2}
      platform: {class: 罐区, grade: 2}
  - code: HS-0001-U1
    name: 加氢装置
    class: 装置
    grade: 3
    key_processes: [加氢工艺]
    registration:
      registry: {class: 装置, grade: 3, key_processes: [加氢工艺]}
      platform: {class: 装置, grade: 3, key_processes: [加氢工艺]}
devices:
  access_gateway: {address: 198.19.1.2, serial: AGW-LAB-0001}
  daq_gateway: {address: 198.19.1.3, serial: DAQ-LAB-0001}
  ai_box: {address: 198.19.1.4, serial: AIB-LAB-0001}
  nvrs:
    - name: nvr1
      vendor: hikvision
      model: DS-7816N-K2
      gb28181: true
      channels: 16
      address: 198.19.1.10
      device_id: "51010000001186000001"
      credential: vault_nvr_labe0001_nvr1
  switch:
    name: msw1
    vendor: huawei
    device_type: huawei
    address: 198.19.1.5
    credential: vault_switch_labe0001
    ports:
      - {name: GigabitEthernet0/0/1, connected: uplink}
      - {name: GigabitEthernet0/0/2, connected: dcs}
      - {name: GigabitEthernet0/0/3}
      - {name: GigabitEthernet0/0/4}
cameras:
  - {name: cam-duty, address: 192.168.1.11, nvr: nvr1, channel: 1, channel_id: "51010000001326000001", location: duty_room}
  - {name: cam-tank, address: 192.168.1.12, nvr: nvr1, channel: 2, channel_id: "51010000001326000002", location: tank_farm, covers: HS-0001-TK}
  - {name: cam-unit, address: 192.168.1.13, nvr: nvr1, channel: 3, channel_id: "51010000001316000003", location: production_unit, covers: HS-0001-U1}
data_sources:
  - name: dcs
    protocol: modbus_tcp
    system: 中控 ECS-700
    host: 198.19.1.20
    port: 502
    slave_id: 1
    tags:
      - {code: LT-101, hazard_source: HS-0001-TK, kind: level, register: 0, type: float32, unit: m, range_min: 0, range_max: 20, alarm_high: 17, alarm_high_high: 18.5, alarm_low: 1}
      - {code: TT-101, hazard_source: HS-0001-TK, kind: temperature, register: 2, type: int16, scale: 0.1, unit: °C, range_min: -40, range_max: 120, alarm_high: 60}
      - {code: PT-101, hazard_source: HS-0001-TK, kind: pressure, register: 3, type: uint16, scale: 0.001, unit: MPa, range_min: 0, range_max: 2.5, alarm_high: 1.6}
      - {code: FT-101, hazard_source: HS-0001-TK, kind: flow, register: 4, type: uint32, word_order: little, scale: 0.01, unit: m3/h, range_min: 0, range_max: 500}
      - {code: TT-201, hazard_source: HS-0001-U1, kind: temperature, register: 6, type: float64, unit: °C, range_min: 0, range_max: 400, alarm_high: 320, alarm_high_high: 350}
      - {code: PT-201, hazard_source: HS-0001-U1, kind: pressure, register: 10, type: int32, byte_order: little, scale: 0.001, unit: MPa, range_min: 0, range_max: 10, alarm_high: 8}
      - {code: GT-101, hazard_source: HS-0001-TK, kind: combustible_gas, register: 12, type: float32, word_order: little,
         unit: "%LEL", range_min: 0, range_max: 100, alarm_high: 25, alarm_high_high: 50}
      - {code: GT-201, hazard_source: HS-0001-U1, kind: toxic_gas, register: 0, function: input, type: uint16, unit: ppm, range_min: 0, range_max: 100, alarm_high: 10, alarm_high_high: 20}
"""

# R4: a plant in long-term shutdown (长期停产) is not rolled out: the tracker must not expect its tags.
SHUTDOWN_ENTERPRISE = f"""\
code: {SHUTDOWN_CODE}
name: 成都停产化工有限公司
city: "5101"
programmes: [major_hazard]
annotations: [long_term_shutdown]
line: {{contracted_mbps: 20, measured_mbps: 20, measured_on: 2026-11-01}}
site: {{control_room_links: 1, cabinet_units_free: 16}}
hazard_sources:
  - code: HS-0002-TK
    name: 2号罐区
    class: 罐区
    grade: 3
    registration:
      registry: {{class: 罐区, grade: 3}}
      platform: {{class: 罐区, grade: 3}}
data_sources:
  - name: gds
    protocol: modbus_tcp
    host: 198.19.9.20
    port: 502
    slave_id: 1
    tags:
      - {{code: GT-301, hazard_source: HS-0002-TK, kind: combustible_gas, register: 0, unit: "%LEL",
          range_min: 0, range_max: 100, alarm_high: 25, alarm_high_high: 50}}
"""


# R4: a confidential plant (保密): its name must not appear in anything served without a credential.
CONFIDENTIAL_CODE = "91510100MALABE0903"
CONFIDENTIAL_NAME = "成都保密化工有限公司"
CONFIDENTIAL_ENTERPRISE = f"""\
code: {CONFIDENTIAL_CODE}
name: {CONFIDENTIAL_NAME}
city: "5101"
programmes: [major_hazard]
annotations: [confidential]
line: {{contracted_mbps: 20, measured_mbps: 20, measured_on: 2026-11-01}}
site: {{control_room_links: 1, cabinet_units_free: 16}}
hazard_sources:
  - code: HS-0003-TK
    name: 3号罐区
    class: 罐区
    grade: 2
    registration:
      registry: {{class: 罐区, grade: 2}}
      platform: {{class: 罐区, grade: 2}}
data_sources:
  - name: gds
    protocol: modbus_tcp
    host: 198.19.9.30
    port: 502
    slave_id: 1
    tags:
      - {{code: GT-401, hazard_source: HS-0003-TK, kind: combustible_gas, register: 0, unit: "%LEL",
          range_min: 0, range_max: 100, alarm_high: 25, alarm_high_high: 50}}
"""


def write_inventory(root: Path, confidential: bool = False) -> Path:
    """Write the two-plant inventory under `root` (three with the confidential one); returns `root`."""
    ent_dir = root / "cities" / "5101-chengdu" / "enterprises"
    ent_dir.mkdir(parents=True)
    (root / "province.yml").write_text(PROVINCE, encoding="utf-8")
    (root / "cities" / "5101-chengdu" / "city.yml").write_text(CHENGDU, encoding="utf-8")
    (ent_dir / "labe0001-chem.yml").write_text(PLANT, encoding="utf-8")
    (ent_dir / "labe0902-shutdown.yml").write_text(SHUTDOWN_ENTERPRISE, encoding="utf-8")
    if confidential:
        (ent_dir / "labe0903-confidential.yml").write_text(CONFIDENTIAL_ENTERPRISE, encoding="utf-8")
    return root
