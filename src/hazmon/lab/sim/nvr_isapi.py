"""Hikvision-style ISAPI XML for the NVR simulator: what it answers, and what it accepts on PUT.

Bodies use Hikvision's namespace and version attribute. On PUT, fields are found by their local
name wherever they sit, and only the fields present change: firmware versions nest the GB/T 28181
settings differently, and a client that writes the same field names must work with all of them.

GET /ISAPI/System/Network/SIP answers (the password is write-only, never returned):
    <SIPServerList><SIPServer><id>1</id><localPort>5060</localPort>
      <GB28181><enabled/><registrar/><registrarPort/><serverId/><serverDomain/><authID/>
               <expires/><heartbeatTime/><heartbeatCount/><transportType>UDP</transportType>
      </GB28181></SIPServer></SIPServerList>
GET /ISAPI/System/Network/SIP/1/SIPInfo answers
    <SIPInfo><videoInputChannelList><VideoInputChannel><id>1</id><videoInputID>20 digits</videoInputID>
      <name/></VideoInputChannel>...</videoInputChannelList></SIPInfo>
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from typing import Any

from hazmon.lab.sim.nvr_state import NvrState, SipConfig

NS = "http://www.hikvision.com/ver20/XMLSchema"
DISK_CAPACITY_MB = 3815447  # a 4 TB disk as an NVR reports it
DISK_FREE_MB = 1207959


class IsapiError(ValueError):
    """A PUT body the device refuses: sub_status is Hikvision's subStatusCode, message names the field."""

    def __init__(self, sub_status: str, message: str) -> None:
        super().__init__(message)
        self.sub_status = sub_status


def _root(tag: str) -> ET.Element:
    return ET.Element(tag, {"version": "2.0", "xmlns": NS})


def _add(parent: ET.Element, tag: str, value: Any = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if value is not None:
        el.text = str(value).lower() if isinstance(value, bool) else str(value)
    return el


def _bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8",
                                                                       xml_declaration=False) + b"\n"


def response_status(url: str, code: int = 1, string: str = "OK", sub: str = "ok",
                    message: str | None = None) -> bytes:
    root = _root("ResponseStatus")
    _add(root, "requestURL", url)
    _add(root, "statusCode", code)
    _add(root, "statusString", string)
    _add(root, "subStatusCode", sub)
    if message:
        _add(root, "errorMsg", message)
    return _bytes(root)


def device_info(state: NvrState) -> bytes:
    nvr = state.nvr
    root = _root("DeviceInfo")
    serial = f"{nvr.model or 'DS-NVR'}{state.ent.slug.upper()}{nvr.name.upper()}"
    for tag, value in (("deviceName", nvr.name), ("deviceID", nvr.device_id or ""),
                       ("model", nvr.model or "NVR"), ("serialNumber", serial),
                       ("macAddress", "c0:56:e3:00:00:01"), ("firmwareVersion", "V4.61.005"),
                       ("firmwareReleasedDate", "build 220101"), ("deviceType", "NVR"),
                       ("manufacturer", nvr.vendor), ("telecontrolID", 255)):
        _add(root, tag, value)
    return _bytes(root)


def _source_descriptor(parent: ET.Element, state: NvrState, cam: Any) -> None:
    src = _add(parent, "sourceInputPortDescriptor")
    _add(src, "proxyProtocol", "HIKVISION")
    _add(src, "addressingFormatType", "ipaddress")
    _add(src, "ipAddress", cam.address)
    _add(src, "managePortNo", 8000)
    _add(src, "srcInputPort", 1)
    _add(src, "userName", "admin")
    _add(src, "streamType", "auto")


def input_proxy_channels(state: NvrState) -> bytes:
    root = _root("InputProxyChannelList")
    for cam in state.cameras:
        ch = _add(root, "InputProxyChannel")
        _add(ch, "id", cam.channel)
        _add(ch, "name", cam.name)
        _source_descriptor(ch, state, cam)
        _add(ch, "online", state.camera_online(cam))  # the contract's "with their status"
    return _bytes(root)


def input_proxy_status(state: NvrState) -> bytes:
    root = _root("InputProxyChannelStatusList")
    for cam in state.cameras:
        ch = _add(root, "InputProxyChannelStatus")
        online = state.camera_online(cam)
        _add(ch, "id", cam.channel)
        _source_descriptor(ch, state, cam)
        _add(ch, "online", online)
        _add(ch, "chanDetectResult", "connect" if online else "netUnreachable")
    return _bytes(root)


def video_inputs(state: NvrState) -> bytes:
    root = _root("VideoInputChannelList")
    for cam in state.cameras:
        ch = _add(root, "VideoInputChannel")
        online = state.camera_online(cam)
        _add(ch, "id", cam.channel)
        _add(ch, "inputPort", cam.channel)
        _add(ch, "name", cam.name)
        _add(ch, "videoInputEnabled", online)
        _add(ch, "resDesc", "1920*1080P" if online else "NO VIDEO")
    return _bytes(root)


def hdd_list(state: NvrState) -> bytes:
    root = _root("hddList")
    hdd = _add(root, "hdd")
    for tag, value in (("id", 1), ("hddName", "hdd1"), ("hddPath", ""), ("hddType", "SATA"),
                       ("status", state.disk), ("capacity", DISK_CAPACITY_MB),
                       ("freeSpace", DISK_FREE_MB if state.disk == "ok" else 0), ("property", "RW")):
        _add(hdd, tag, value)
    return _bytes(root)


# ---------------------------------------------------------------- GB/T 28181 access

# ISAPI field name -> (SipConfig attribute, parser)
def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError("must be true or false")
    return text.lower() == "true"


def _int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d+", text):
            raise ValueError("must be a whole number")
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value
    return parse


def _digits(n: int) -> Any:
    def parse(text: str) -> str:
        if not re.fullmatch(rf"\d{{{n}}}", text):
            raise ValueError(f"must be {n} digits (GB/T 28181)")
        return text
    return parse


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError("must be an IPv4 address") from None


def _password(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


SIP_FIELDS: dict[str, tuple[str, Any]] = {
    "enabled": ("enabled", _bool),
    "registrar": ("registrar", _ipv4),
    "registrarPort": ("registrar_port", _int(1, 65535)),
    "serverId": ("server_id", _digits(20)),
    "serverDomain": ("server_domain", _digits(10)),
    "authID": ("auth_id", _digits(20)),
    "password": ("password", _password),
    "expires": ("expires", _int(1, 86400)),
    "heartbeatTime": ("heartbeat_time", _int(1, 3600)),  # 1 s allowed so tests stay fast
    "heartbeatCount": ("heartbeat_count", _int(1, 255)),
    "localPort": ("local_port", _int(1, 65535)),
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise IsapiError("badXmlContent", f"the body is not XML: {exc}") from None


def sip_config(cfg: SipConfig) -> bytes:
    root = _root("SIPServerList")
    server = _add(root, "SIPServer")
    _add(server, "id", 1)
    _add(server, "localPort", cfg.local_port)
    gb = _add(server, "GB28181")
    for tag, value in (("enabled", cfg.enabled), ("registrar", cfg.registrar),
                       ("registrarPort", cfg.registrar_port), ("serverId", cfg.server_id),
                       ("serverDomain", cfg.server_domain), ("authID", cfg.auth_id),
                       ("expires", cfg.expires), ("heartbeatTime", cfg.heartbeat_time),
                       ("heartbeatCount", cfg.heartbeat_count), ("transportType", "UDP"),
                       ("protocolVersion", "GB/T28181-2016")):
        _add(gb, tag, value)
    return _bytes(root)


def parse_sip_config(body: bytes) -> dict[str, Any]:
    """The SipConfig changes a PUT asks for; IsapiError names the first bad field and its rule."""
    root = _parse_xml(body)
    if _local(root.tag) not in ("SIPServerList", "SIPServer", "GB28181"):
        raise IsapiError("badXmlContent", f"root element <{_local(root.tag)}>: expected <SIPServerList> "
                                          "or <SIPServer>")
    changes: dict[str, Any] = {}
    for el in root.iter():
        name = _local(el.tag)
        if name not in SIP_FIELDS or name in changes:
            continue
        attr, parse = SIP_FIELDS[name]
        text = (el.text or "").strip()
        try:
            changes[attr] = parse(text)
        except ValueError as exc:
            raise IsapiError("badParameters", f"<{name}> {text!r}: {exc}") from None
    if not changes:
        raise IsapiError("badXmlContent", "no GB/T 28181 field (enabled, registrar, serverId, ...) in the body")
    return changes


def sip_info(state: NvrState) -> bytes:
    root = _root("SIPInfo")
    lst = _add(root, "videoInputChannelList")
    names = {c.channel: c.name for c in state.cameras}
    for channel in range(1, state.nvr.channels + 1):
        if channel not in names and channel not in state.channel_ids:
            continue
        ch = _add(lst, "VideoInputChannel")
        _add(ch, "id", channel)
        _add(ch, "videoInputID", state.channel_ids.get(channel, ""))
        _add(ch, "name", names.get(channel, ""))
    return _bytes(root)


def parse_sip_info(body: bytes, channels: int) -> dict[int, str]:
    """Channel number -> 20-digit channel ID, from every element holding an <id> and a *ID child."""
    root = _parse_xml(body)
    ids: dict[int, str] = {}
    for el in root.iter():
        children = {_local(c.tag): (c.text or "").strip() for c in el}
        if "id" not in children:
            continue
        id_fields = [k for k in children if k != "id" and k.endswith("ID")]
        if not id_fields:
            continue
        number, value = children["id"], children[id_fields[0]]
        if not number.isdigit() or not 1 <= int(number) <= channels:
            raise IsapiError("badParameters", f"<id> {number!r}: a channel number from 1 to {channels}")
        if not re.fullmatch(r"\d{20}", value):
            raise IsapiError("badParameters", f"channel {number} <{id_fields[0]}> {value!r}: must be 20 "
                                              "digits (GB/T 28181)")
        ids[int(number)] = value
    if not ids:
        raise IsapiError("badXmlContent", "no channel (<id> with <videoInputID>) in the body")
    return ids
