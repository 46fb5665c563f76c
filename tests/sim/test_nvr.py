"""The NVR simulator: ISAPI with digest auth over real HTTP (urllib), GB/T 28181 against the real registrar.

Both simulators run as their own processes on 127.0.0.1 free ports, as the lab runs them.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from hazmon.inventory.validate import load_valid
from hazmon.lab import tls
from hazmon.lab.sim.common import control, write_secret
from hazmon.testing.procs import free_port, stop, wait_port

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
ENTERPRISE = "labe0001"
SERVER_ID = "51000000002006000001"
DOMAIN = "5100000000"
NS = "{http://www.hikvision.com/ver20/XMLSchema}"
SIP = "/ISAPI/System/Network/SIP"
SIPINFO = "/ISAPI/System/Network/SIP/1/SIPInfo"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp: Path, name: str, args: list[str]) -> subprocess.Popen:
    log = tmp / f"{name}.log"
    return subprocess.Popen([sys.executable, "-m", f"hazmon.lab.sim.{name}", "--inventory", str(LAB),
                             "--bind", "127.0.0.1", *args], stdout=subprocess.DEVNULL, stderr=log.open("w"))


def ready(tmp: Path, name: str, proc: subprocess.Popen, tcp_port: int) -> subprocess.Popen:
    try:
        wait_port("127.0.0.1", tcp_port)
    except TimeoutError:
        stop(proc)
        raise AssertionError((tmp / f"{name}.log").read_text()) from None
    return proc


def start(tmp: Path, name: str, args: list[str], tcp_port: int) -> subprocess.Popen:
    return ready(tmp, name, launch(tmp, name, args), tcp_port)


@dataclass
class Lab:
    tmp: Path
    nvr_url: str
    nvr_password: str
    nvr_control: Path
    sip_port: int
    sip_password: str
    registrar_state: Path
    device_id: str
    channel_ids: dict[int, str]
    restart_nvr: Callable[[], None]

    def registrations(self) -> dict:
        return json.loads(self.registrar_state.read_text())

    def isapi(self, path: str, body: bytes | None = None, password: str | None = None) -> ET.Element:
        """One ISAPI request with digest auth, as an operator's script would do it with urllib."""
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, self.nvr_url, "admin", password or self.nvr_password)
        opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
        request = urllib.request.Request(self.nvr_url + path, data=body, method="PUT" if body else "GET")
        with opener.open(request, timeout=5) as resp:
            return ET.fromstring(resp.read())


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    inv, _ = load_valid(LAB)
    ent = inv.enterprise(ENTERPRISE)
    assert ent is not None
    nvr = ent.devices.nvrs[0]
    sip_password, nvr_password = secrets.token_hex(8), secrets.token_hex(8)
    sip_port, reg_http, nvr_http = free_udp_port(), free_port(), free_port()
    # Both start at once: each spends most of its start-up loading the inventory.
    procs = [launch(tmp_path, "registrar", [
        "--port", str(sip_port), "--http-port", str(reg_http), "--state-dir", str(tmp_path / "registrar"),
        "--secret-file", str(write_secret(tmp_path / "sip.secret", sip_password))])]
    nvr_args = ["--enterprise", ENTERPRISE, "--nvr", nvr.name, "--port", str(nvr_http),
                "--state-dir", str(tmp_path / "nvr"), "--control", str(tmp_path / "nvr.sock"),
                "--secret-file", str(write_secret(tmp_path / "nvr.secret", nvr_password))]

    def restart_nvr() -> None:
        stop(procs.pop())
        procs.append(start(tmp_path, "nvr", nvr_args, nvr_http))

    try:
        procs.append(launch(tmp_path, "nvr", nvr_args))
        ready(tmp_path, "registrar", procs[0], reg_http)
        ready(tmp_path, "nvr", procs[1], nvr_http)
        yield Lab(tmp=tmp_path, nvr_url=f"http://127.0.0.1:{nvr_http}", nvr_password=nvr_password,
                  nvr_control=tmp_path / "nvr.sock", sip_port=sip_port, sip_password=sip_password,
                  registrar_state=tmp_path / "registrar" / "registrations.json",
                  device_id=nvr.device_id or "",
                  channel_ids={c.channel: c.channel_id or "" for c in ent.cameras if c.nvr == nvr.name},
                  restart_nvr=restart_nvr)
    finally:
        for proc in reversed(procs):
            stop(proc)


def sip_body(lab: Lab, password: str, heartbeat: int = 1) -> bytes:
    local_port = free_udp_port()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SIPServerList version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
 <SIPServer><id>1</id><localPort>{local_port}</localPort>
  <GB28181>
   <enabled>true</enabled><registrar>127.0.0.1</registrar><registrarPort>{lab.sip_port}</registrarPort>
   <serverId>{SERVER_ID}</serverId><serverDomain>{DOMAIN}</serverDomain><authID>{lab.device_id}</authID>
   <password>{password}</password><expires>3600</expires>
   <heartbeatTime>{heartbeat}</heartbeatTime><heartbeatCount>3</heartbeatCount>
  </GB28181>
 </SIPServer>
</SIPServerList>""".encode()


def sipinfo_body(ids: dict[int, str]) -> bytes:
    channels = "".join(f"<VideoInputChannel><id>{n}</id><videoInputID>{i}</videoInputID></VideoInputChannel>"
                       for n, i in ids.items())
    return (f'<SIPInfo version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">'
            f"<videoInputChannelList>{channels}</videoInputChannelList></SIPInfo>").encode()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def text(root: ET.Element, tag: str) -> str | None:
    return root.findtext(f".//{NS}{tag}")


# ---------------------------------------------------------------- ISAPI


def test_isapi_needs_digest_auth(lab: Lab) -> None:
    with pytest.raises(urllib.error.HTTPError) as no_auth:
        urllib.request.urlopen(lab.nvr_url + "/ISAPI/System/deviceInfo", timeout=5)
    assert no_auth.value.code == 401
    challenge = no_auth.value.headers["WWW-Authenticate"]
    assert challenge.startswith("Digest ") and 'qop="auth"' in challenge and "MD5" in challenge
    with pytest.raises(urllib.error.HTTPError) as wrong:
        lab.isapi("/ISAPI/System/deviceInfo", password="wrong-password")
    assert wrong.value.code == 401


def test_isapi_device_info_channels_and_disk(lab: Lab) -> None:
    info = lab.isapi("/ISAPI/System/deviceInfo")
    assert info.tag == f"{NS}DeviceInfo"
    assert (text(info, "deviceName"), text(info, "model"), text(info, "deviceType")) == (
        "nvr1", "DS-7816N-K2", "NVR")
    channels = lab.isapi("/ISAPI/ContentMgmt/InputProxy/channels")
    found = {int(c.findtext(f"{NS}id") or 0): (c.findtext(f"{NS}name"), text(c, "ipAddress"), c.findtext(f"{NS}online"))
             for c in channels.iter(f"{NS}InputProxyChannel")}
    assert found == {1: ("cam-duty", "192.168.1.11", "true"), 2: ("cam-tank", "192.168.1.12", "true"),
                     3: ("cam-unit", "192.168.1.13", "true")}
    inputs = lab.isapi("/ISAPI/System/Video/inputs/channels")
    assert len(list(inputs.iter(f"{NS}VideoInputChannel"))) == 3
    hdd = lab.isapi("/ISAPI/ContentMgmt/Storage/hdd")
    assert text(hdd, "status") == "ok" and int(text(hdd, "capacity") or 0) > 0


def test_camera_and_disk_faults_show_in_isapi(lab: Lab) -> None:
    assert control(lab.nvr_control, {"cmd": "camera", "camera": "cam-tank", "online": False})["ok"]
    assert control(lab.nvr_control, {"cmd": "disk", "status": "error"})["ok"]
    status = lab.isapi("/ISAPI/ContentMgmt/InputProxy/channels/status")
    online = {s.findtext(f"{NS}id"): s.findtext(f"{NS}online") for s in status.iter(f"{NS}InputProxyChannelStatus")}
    assert online == {"1": "true", "2": "false", "3": "true"}
    assert text(lab.isapi("/ISAPI/ContentMgmt/Storage/hdd"), "status") == "error"
    refused = control(lab.nvr_control, {"cmd": "camera", "camera": "no-such-cam", "online": False})
    assert refused["ok"] is False and "cam-duty" in refused["error"]


def test_sip_settings_are_validated_field_by_field(lab: Lab) -> None:
    bad = sip_body(lab, "pw").replace(f"<serverId>{SERVER_ID}</serverId>".encode(), b"<serverId>5100</serverId>")
    with pytest.raises(urllib.error.HTTPError) as err:
        lab.isapi(SIP, bad)
    assert err.value.code == 400
    reply = ET.fromstring(err.value.read())
    assert text(reply, "subStatusCode") == "badParameters"
    assert "serverId" in (text(reply, "errorMsg") or "") and "20 digits" in (text(reply, "errorMsg") or "")
    with pytest.raises(urllib.error.HTTPError) as not_xml:
        lab.isapi(SIP, b"<SIPServerList>")
    assert not_xml.value.code == 400
    # nothing was applied: the factory settings are still there
    assert text(lab.isapi(SIP), "enabled") == "false"


# ---------------------------------------------------------------- GB/T 28181 end to end


def test_configured_nvr_registers_and_keeps_alive_at_the_registrar(lab: Lab) -> None:
    # The channel IDs first, as the rollout does, so that the platform's Catalog query finds them.
    reply = lab.isapi(SIPINFO, sipinfo_body(lab.channel_ids))
    assert text(reply, "statusCode") == "1"
    read_ids = {int(c.findtext(f"{NS}id") or 0): c.findtext(f"{NS}videoInputID")
                for c in lab.isapi(SIPINFO).iter(f"{NS}VideoInputChannel")}
    assert read_ids == lab.channel_ids

    assert text(lab.isapi(SIP, sip_body(lab, lab.sip_password)), "statusString") == "OK"
    settings = lab.isapi(SIP)
    assert (text(settings, "enabled"), text(settings, "registrar"), text(settings, "registrarPort")) == (
        "true", "127.0.0.1", str(lab.sip_port))
    assert (text(settings, "serverId"), text(settings, "authID"), text(settings, "heartbeatTime")) == (
        SERVER_ID, lab.device_id, "1")
    assert text(settings, "password") is None  # write-only, as on the device

    def two_keepalives() -> bool:
        device = lab.registrations()["devices"].get(lab.device_id)
        return bool(device) and device["registered"] and device["keepalives"] >= 2
    wait_for(two_keepalives, 6, "registration and two keepalives at the registrar")
    device = lab.registrations()["devices"][lab.device_id]
    assert device["online"] is True
    assert device["keepalive_interval"] == pytest.approx(1.0, abs=0.5)
    assert device["last_keepalive"] > device["registered_at"]
    wait_for(lambda: len(lab.registrations()["devices"][lab.device_id]["channels"]) == 3, 3, "Catalog")
    assert {c["device_id"] for c in lab.registrations()["devices"][lab.device_id]["channels"]} == set(
        lab.channel_ids.values())
    status = control(lab.nvr_control, {"cmd": "status"})["sip_status"]
    assert status["registered"] is True and status["keepalives_ok"] >= 2

    # An NVR that falls silent goes offline at the platform after 3 missed heartbeats.
    control(lab.nvr_control, {"cmd": "stop"})
    wait_for(lambda: not lab.registrations()["devices"][lab.device_id]["online"], 6, "offline")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        lab.isapi("/ISAPI/System/deviceInfo")
    control(lab.nvr_control, {"cmd": "resume"})
    wait_for(lambda: lab.registrations()["devices"][lab.device_id]["online"], 6, "back online")


def test_wrong_sip_password_is_refused_and_not_registered(lab: Lab) -> None:
    lab.isapi(SIP, sip_body(lab, "not-the-platform-password"))

    def refused() -> bool:
        return any(r["device_id"] == lab.device_id and r["status"] == 403
                   for r in lab.registrations()["rejections"])
    wait_for(refused, 5, "a 403 at the registrar")
    assert lab.device_id not in lab.registrations()["devices"]
    # The registrar writes its file before it answers: the NVR hears the 403 a moment later.
    wait_for(lambda: control(lab.nvr_control, {"cmd": "status"})["sip_status"]["last_status"] == 403, 5,
             "the NVR hearing the 403")
    assert control(lab.nvr_control, {"cmd": "status"})["sip_status"]["registered"] is False


def test_settings_survive_a_restart_in_a_0600_file(lab: Lab, tmp_path: Path) -> None:
    lab.isapi(SIPINFO, sipinfo_body({1: lab.channel_ids[1]}))
    lab.isapi(SIP, sip_body(lab, lab.sip_password, heartbeat=7).replace(b"true", b"false"))
    state_file = tmp_path / "nvr" / f"nvr-{ENTERPRISE}-nvr1.json"
    assert state_file.stat().st_mode & 0o077 == 0  # it holds the SIP password
    lab.restart_nvr()
    assert text(lab.isapi(SIP), "heartbeatTime") == "7"
    assert [c.findtext(f"{NS}videoInputID") for c in lab.isapi(SIPINFO).iter(f"{NS}VideoInputChannel")
            if c.findtext(f"{NS}id") == "1"] == [lab.channel_ids[1]]
    assert lab.nvr_password not in (tmp_path / "nvr.log").read_text()


def test_bad_options_are_named_in_one_clear_line(tmp_path: Path) -> None:
    secret = write_secret(tmp_path / "nvr.secret", "pw")
    result = subprocess.run([sys.executable, "-m", "hazmon.lab.sim.nvr", "--inventory", str(LAB),
                             "--enterprise", ENTERPRISE, "--nvr", "nvr9", "--secret-file", str(secret),
                             "--state-dir", str(tmp_path / "nvr")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--nvr nvr9" in result.stderr and "'nvr1'" in result.stderr


# ---------------------------------------------------------------- ISAPI over HTTPS (N8)


def https_opener(url: str, password: str, ca: Path) -> urllib.request.OpenerDirector:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url, "admin", password)
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(ca))),
                                       urllib.request.HTTPDigestAuthHandler(manager))


def test_isapi_over_https_with_a_certificate_for_its_address(tmp_path: Path) -> None:
    """As a Hikvision NVR on 443: a certificate naming its address, signed by the (lab) CA; the same
    ISAPI, digest-authenticated, on HTTPS and on plain HTTP."""
    ca = tls.ensure_ca(tmp_path / "ca")
    cert = tls.issue(ca, "127.0.0.1", tmp_path / "nvr.crt", tmp_path / "nvr.key")
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0 and cert.key.stat().st_mode & 0o077 == 0
    password, http_port, https_port = secrets.token_hex(8), free_port(), free_port()
    proc = start(tmp_path, "nvr", [
        "--enterprise", ENTERPRISE, "--nvr", "nvr1", "--port", str(http_port), "--https-port", str(https_port),
        "--tls-cert", str(cert.cert), "--tls-key", str(cert.key), "--state-dir", str(tmp_path / "nvr"),
        "--secret-file", str(write_secret(tmp_path / "nvr.secret", password))], http_port)
    try:
        url = f"https://127.0.0.1:{https_port}"
        verify = ssl.create_default_context(cafile=str(ca.cert))
        with socket.create_connection(("127.0.0.1", https_port), timeout=5) as raw, \
                verify.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
            served = x509.load_der_x509_certificate(tls_sock.getpeercert(binary_form=True) or b"")
        names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        with https_opener(url, password, ca.cert).open(url + "/ISAPI/System/deviceInfo", timeout=5) as resp:
            assert text(ET.fromstring(resp.read()), "deviceName") == "nvr1"
        with pytest.raises(urllib.error.HTTPError) as wrong:  # digest auth over HTTPS as over HTTP
            https_opener(url, "wrong", ca.cert).open(url + "/ISAPI/System/deviceInfo", timeout=5)
        assert wrong.value.code == 401
        # A client holding another CA refuses the NVR's certificate; the NVR carries on serving.
        other = tls.ensure_ca(tmp_path / "other-ca")
        with pytest.raises(urllib.error.URLError) as refused:
            https_opener(url, password, other.cert).open(url + "/ISAPI/System/deviceInfo", timeout=5)
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
        with https_opener(url, password, ca.cert).open(url + "/ISAPI/System/deviceInfo", timeout=5) as resp:
            assert resp.status == 200
        plain = Lab(tmp=tmp_path, nvr_url=f"http://127.0.0.1:{http_port}", nvr_password=password,
                    nvr_control=tmp_path / "none", sip_port=0, sip_password="", registrar_state=tmp_path / "none",
                    device_id="", channel_ids={}, restart_nvr=lambda: None)
        assert text(plain.isapi("/ISAPI/System/deviceInfo"), "deviceName") == "nvr1"
    finally:
        stop(proc)
    log = (tmp_path / "nvr.log").read_text()
    assert f"ISAPI on https://127.0.0.1:{https_port}" in log and "Traceback" not in log
    assert password not in log


def test_a_tls_key_others_can_read_is_refused(tmp_path: Path) -> None:
    ca = tls.ensure_ca(tmp_path / "ca")
    cert = tls.issue(ca, "127.0.0.1", tmp_path / "nvr.crt", tmp_path / "nvr.key")
    cert.key.chmod(0o644)
    result = subprocess.run([sys.executable, "-m", "hazmon.lab.sim.nvr", "--inventory", str(LAB),
                             "--enterprise", ENTERPRISE, "--nvr", "nvr1", "--tls-cert", str(cert.cert),
                             "--tls-key", str(cert.key), "--secret-file", str(write_secret(tmp_path / "s", "pw")),
                             "--state-dir", str(tmp_path / "nvr")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"--tls-key {cert.key}: mode 0644 lets others in" in result.stderr
