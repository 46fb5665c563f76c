"""The notice's figures (川应急函〔2020〕238号), each under its requirement ID."""

N1_CITY_UPLINK_MIN_MBPS = 100.0
N2_LINE_MIN_MBPS = 20.0
N3_TOPOLOGY_BY_LINKS = {1: "topology 2 (图二)", 3: "topology 1 (图一)"}
N5_CABINET_MIN_UNITS = 16
N6_FREE_PORTS = ("ai_box", "nvr")
V1_CAMERA_NETWORK = "192.168.0.0/16"
FIREWORKS_LOCATIONS = ("fw_workshop_1_1", "fw_warehouse_1_1", "fw_drying_yard_entrance")  # V4
# V5: what a camera must show for each hazard-source class.
V5_LOCATION_BY_CLASS = {"装置": "production_unit", "罐区": "tank_farm", "库区": "warehouse"}
GB28181_TYPE_NVR = ("118",)
GB28181_TYPE_CAMERA = ("131", "132")
GB28181_TYPE_SIP_SERVER = ("200",)
