"""The GB/T 28181 registrar simulator over real UDP, and the SIP/digest/MANSCDP code it shares with the NVR.

The registrar runs as its own process on 127.0.0.1; the test speaks SIP to it over a UDP socket.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hazmon.lab.sim import sip
from hazmon.lab.sim.common import control, write_secret
from hazmon.testing.procs import free_port, stop, wait_port

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
SERVER_ID = "51000000002006000001"  # inventories/lab/province.yml platform.sip
DOMAIN = "5100000000"
DEVICE = "51010000001186000001"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registrar:
    port: int
    http_port: int
    state_dir: Path
    control: Path
    password: str
    proc: subprocess.Popen

    def registrations(self) -> dict:
        return json.loads((self.state_dir / "registrations.json").read_text())


def start_registrar(tmp: Path, *extra: str, device_secrets: dict[str, str] | None = None,
                    shared_fallback: bool = False) -> Registrar:
    """The registrar with the province's one password (`password`), or with a password per device
    (device_secrets) and, with shared_fallback, `password` for the devices not in that table."""
    password = secrets.token_hex(8)
    port, http_port = free_udp_port(), free_port()
    args: list[str] = []
    if device_secrets is None or shared_fallback:
        args += ["--secret-file", str(write_secret(tmp / "sip.secret", password))]
    if device_secrets is not None:
        args += ["--device-secrets", str(write_secret(tmp / "sip-devices.json", json.dumps(device_secrets)))]
    if shared_fallback:
        args.append("--shared-fallback")
    state_dir, ctl = tmp / "registrar", tmp / "registrar.sock"
    proc = subprocess.Popen([sys.executable, "-m", "hazmon.lab.sim.registrar", "--inventory", str(LAB),
                             "--bind", "127.0.0.1", "--port", str(port), "--http-port", str(http_port),
                             *args, "--state-dir", str(state_dir), "--control", str(ctl), *extra],
                            stdout=subprocess.DEVNULL, stderr=(tmp / "registrar.log").open("w"))
    try:
        wait_port("127.0.0.1", http_port)
    except TimeoutError:
        stop(proc)
        raise AssertionError((tmp / "registrar.log").read_text()) from None
    return Registrar(port, http_port, state_dir, ctl, password, proc)


@pytest.fixture(scope="module")
def registrar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registrar]:
    """One registrar for the module (start-up is the slow part); each test has its own device ID."""
    reg = start_registrar(tmp_path_factory.mktemp("registrar"))
    try:
        yield reg
    finally:
        stop(reg.proc)


@dataclass
class Client:
    """A bare SIP client on a UDP socket: one request, one final response."""

    sock: socket.socket
    server: tuple[str, int]
    device: str = DEVICE
    cseq: int = 0

    def send(self, method: str, extra: list[tuple[str, str]], body: bytes = b"",
             device: str | None = None) -> sip.SipMessage:
        device = device or self.device
        self.cseq += 1
        host, port = self.sock.getsockname()
        req = sip.request(method, f"sip:{SERVER_ID}@{DOMAIN}", [
            ("Via", f"SIP/2.0/UDP {host}:{port};rport;branch={sip.new_branch()}"),
            ("From", f"<sip:{device}@{DOMAIN}>;tag={sip.new_tag()}"),
            ("To", f"<sip:{device if method == 'REGISTER' else SERVER_ID}@{DOMAIN}>"),
            ("Call-ID", sip.new_call_id(host)), ("CSeq", f"{self.cseq} {method}"), *extra], body)
        self.sock.sendto(req.encode(), self.server)
        while True:
            data, _ = self.sock.recvfrom(65536)
            msg = sip.parse(data)
            if not msg.is_request and msg.branch == req.branch:
                return msg

    def register(self, password: str, device: str | None = None) -> tuple[sip.SipMessage, sip.SipMessage]:
        device = device or self.device
        host, port = self.sock.getsockname()
        contact = [("Contact", f"<sip:{device}@{host}:{port}>"), ("Expires", "3600")]
        first = self.send("REGISTER", contact, device=device)
        challenge = sip.Challenge.parse(first.get("WWW-Authenticate") or "")
        creds = sip.authorize(challenge, username=device, password=password, method="REGISTER",
                              uri=f"sip:{SERVER_ID}@{DOMAIN}")
        return first, self.send("REGISTER", [*contact, ("Authorization", creds.header())], device=device)

    def keepalive(self, sn: int, device: str | None = None) -> sip.SipMessage:
        return self.send("MESSAGE", [("Content-Type", sip.MANSCDP_TYPE)],
                         sip.keepalive(sn, device or self.device), device=device)


@pytest.fixture
def client(registrar: Registrar) -> Iterator[Client]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        device = f"5101000000118{secrets.randbelow(10**7):07d}"  # this test's own NVR
        yield Client(sock, ("127.0.0.1", registrar.port), device=device)


# ---------------------------------------------------------------- the registrar over UDP


def test_register_is_challenged_then_accepted_and_recorded(registrar: Registrar, client: Client) -> None:
    first, second = client.register(registrar.password)
    assert first.status == 401
    challenge = sip.Challenge.parse(first.get("WWW-Authenticate") or "")
    assert challenge.realm == DOMAIN  # GB/T 28181: the realm is the SIP domain
    assert second.status == 200
    assert second.get("Expires") == "3600"
    assert second.get("Date")  # the device's clock source (GB/T 28181 §9.1.2.1)
    device = registrar.registrations()["devices"][client.device]
    assert device["registered"] and device["online"]
    assert device["address"] == f"127.0.0.1:{client.sock.getsockname()[1]}"
    assert device["expires_at"] == pytest.approx(device["registered_at"] + 3600)


def test_wrong_password_is_refused_and_not_registered(registrar: Registrar, client: Client) -> None:
    first, second = client.register("not-the-password")
    assert (first.status, second.status) == (401, 403)
    state = registrar.registrations()
    assert client.device not in state["devices"]
    assert state["rejections"][-1]["device_id"] == client.device
    assert state["rejections"][-1]["status"] == 403
    assert "password" in state["rejections"][-1]["reason"]


def test_a_device_id_that_is_not_20_digits_is_refused(registrar: Registrar, client: Client) -> None:
    reply = client.send("REGISTER", [("Expires", "3600")], device="5101")
    assert reply.status == 403
    assert "20 digits" in registrar.registrations()["rejections"][-1]["reason"]


def test_keepalives_are_answered_and_counted_only_for_registered_devices(
        registrar: Registrar, client: Client) -> None:
    assert client.keepalive(1).status == 403  # not registered yet
    client.register(registrar.password)
    for sn in (1, 2, 3):
        assert client.keepalive(sn).status == 200
    assert client.keepalive(3).status == 200  # a retransmission is answered, not counted again
    device = registrar.registrations()["devices"][client.device]
    assert device["keepalives"] == 3
    assert device["last_keepalive"] >= device["registered_at"]
    assert device["keepalive_interval"] is not None


def test_a_device_that_stops_keeping_alive_goes_offline(tmp_path: Path) -> None:
    reg = start_registrar(tmp_path, "--heartbeat", "0.3", "--missed", "3")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            client = Client(sock, ("127.0.0.1", reg.port))
            client.register(reg.password)
            assert reg.registrations()["devices"][client.device]["online"] is True
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and reg.registrations()["devices"][client.device]["online"]:
                time.sleep(0.1)
            device = reg.registrations()["devices"][client.device]
            assert device["online"] is False and device["registered"] is True
    finally:
        stop(reg.proc)


def test_unregister_with_expires_zero(registrar: Registrar, client: Client) -> None:
    client.register(registrar.password)
    first = client.send("REGISTER", [("Expires", "0")])
    creds = sip.authorize(sip.Challenge.parse(first.get("WWW-Authenticate") or ""), username=client.device,
                          password=registrar.password, method="REGISTER", uri=f"sip:{SERVER_ID}@{DOMAIN}")
    assert client.send("REGISTER", [("Expires", "0"), ("Authorization", creds.header())]).status == 200
    device = registrar.registrations()["devices"][client.device]
    assert device["registered"] is False and device["online"] is False


def test_registrar_asks_for_the_catalog_and_records_the_channels(registrar: Registrar, client: Client) -> None:
    client.register(registrar.password)
    data, addr = client.sock.recvfrom(65536)  # the platform's Catalog query
    query = sip.parse(data)
    doc = sip.parse_manscdp(query.body)
    assert (query.method, doc.root, doc.cmd_type, doc.device_id) == ("MESSAGE", "Query", "Catalog", client.device)
    client.sock.sendto(sip.response_to(query, 200, to_tag="x").encode(), addr)
    items = [sip.CatalogItem("51010000001326000001", "cam-duty"),
             sip.CatalogItem("51010000001326000002", "cam-tank", status="OFF")]
    reply = client.send("MESSAGE", [("Content-Type", sip.MANSCDP_TYPE)],
                        sip.catalog_response(doc.sn, client.device, items))
    assert reply.status == 200
    channels = registrar.registrations()["devices"][client.device]["channels"]
    assert channels == [{"device_id": "51010000001326000001", "name": "cam-duty", "status": "ON"},
                        {"device_id": "51010000001326000002", "name": "cam-tank", "status": "OFF"}]


def test_http_port_and_control_socket_serve_the_same_state(registrar: Registrar, client: Client) -> None:
    client.register(registrar.password)
    with urllib.request.urlopen(f"http://127.0.0.1:{registrar.http_port}/registrations.json") as resp:
        over_http = json.load(resp)
    assert over_http["devices"][client.device]["registered"] is True
    assert over_http["server_id"] == SERVER_ID
    reply = control(registrar.control, {"cmd": "registrations"})
    assert reply["ok"] and client.device in reply["devices"]
    assert control(registrar.control, {"cmd": "stop"})["stopped"] is True
    client.sock.settimeout(1.0)
    with pytest.raises(TimeoutError):
        client.keepalive(9)  # a stopped platform answers nothing
    control(registrar.control, {"cmd": "resume"})
    client.sock.settimeout(5)
    assert client.keepalive(10).status == 200
    assert control(registrar.control, {"cmd": "bogus"})["ok"] is False


def test_password_never_appears_in_state_or_log(registrar: Registrar, client: Client) -> None:
    client.register(registrar.password)
    client.register("wrong")
    assert registrar.password not in (registrar.state_dir / "registrations.json").read_text()
    assert registrar.password not in (registrar.state_dir.parent / "registrar.log").read_text()


# ---------------------------------------------------------------- a password per device (N8)

NVR_A, NVR_B, NVR_C = "51010000001186000101", "51010000001186000102", "51010000001186000103"
OWN = {NVR_A: "a-" + secrets.token_hex(8), NVR_B: "b-" + secrets.token_hex(8)}


@pytest.fixture(scope="module")
def per_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registrar]:
    """A registrar with a password per device for A and B, the shared one allowed only to others."""
    reg = start_registrar(tmp_path_factory.mktemp("per-device"), device_secrets=OWN, shared_fallback=True)
    try:
        yield reg
    finally:
        stop(reg.proc)


def udp_client(reg: Registrar, device: str) -> Client:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return Client(sock, ("127.0.0.1", reg.port), device=device)


def test_per_device_passwords_accept_a_device_with_its_own_only(per_device: Registrar) -> None:
    a = udp_client(per_device, NVR_A)
    with a.sock:
        # Another device's password, then the province's shared one (which this registrar knows and
        # accepts from devices without their own): both refused for A.
        for wrong in (OWN[NVR_B], per_device.password):
            first, second = a.register(wrong)
            assert (first.status, second.status) == (401, 403)
        state = per_device.registrations()
        assert NVR_A not in state["devices"]
        refused = [r for r in state["rejections"] if r["device_id"] == NVR_A]
        assert len(refused) == 2 and all("wrong password" in r["reason"] and "own" in r["reason"] for r in refused)
        _, ok = a.register(OWN[NVR_A])
        assert ok.status == 200
        assert per_device.registrations()["devices"][NVR_A]["registered"] is True
    b = udp_client(per_device, NVR_B)
    with b.sock:
        assert b.register(OWN[NVR_A])[1].status == 403
        assert b.register(OWN[NVR_B])[1].status == 200


def test_shared_fallback_serves_only_devices_without_their_own(per_device: Registrar) -> None:
    c = udp_client(per_device, NVR_C)
    with c.sock:
        assert c.register(OWN[NVR_A])[1].status == 403
        assert c.register(per_device.password)[1].status == 200


def test_without_fallback_a_device_without_its_own_password_is_refused(tmp_path: Path) -> None:
    reg = start_registrar(tmp_path, device_secrets=OWN)
    try:
        c = udp_client(reg, NVR_C)
        with c.sock:
            assert c.register(OWN[NVR_A])[1].status == 403
            assert "no password for this device" in reg.registrations()["rejections"][-1]["reason"]
        a = udp_client(reg, NVR_A)
        with a.sock:
            assert a.register(OWN[NVR_A])[1].status == 200
        log = (tmp_path / "registrar.log").read_text()
        assert all(pw not in log for pw in OWN.values())
        assert all(pw not in (reg.state_dir / "registrations.json").read_text() for pw in OWN.values())
    finally:
        stop(reg.proc)


@pytest.mark.parametrize("table, mode, extra, problem", [
    ('{"51010000001186000101": "s3cr3t-x"}', 0o644, [], "mode 0644 lets others in"),
    ("not json", 0o600, [], "not JSON"),
    ('{"5101": "s3cr3t-x"}', 0o600, [], "20-digit device ID"),
    ('{"51010000001186000101": ""}', 0o600, [], "non-empty"),
    ('{"51010000001186000101": "s3cr3t-x"}', 0o600, ["--secret-file", "SHARED"], "only with --shared-fallback"),
])
def test_a_bad_password_table_is_named_in_one_line(tmp_path: Path, table: str, mode: int, extra: list[str],
                                                   problem: str) -> None:
    path = tmp_path / "sip-devices.json"
    path.write_text(table)
    path.chmod(mode)
    extra = [str(write_secret(tmp_path / "sip.secret", "shared")) if a == "SHARED" else a for a in extra]
    result = subprocess.run([sys.executable, "-m", "hazmon.lab.sim.registrar", "--inventory", str(LAB),
                             "--bind", "127.0.0.1", "--port", str(free_udp_port()), "--device-secrets", str(path),
                             "--state-dir", str(tmp_path / "registrar"), *extra],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and problem in result.stderr
    assert "Traceback" not in result.stderr and "s3cr3t-x" not in result.stderr


# ---------------------------------------------------------------- sip.py, without a network


def test_sip_message_round_trip_with_compact_headers_and_folding() -> None:
    raw = (b"MESSAGE sip:51000000002006000001@5100000000 SIP/2.0\r\n"
           b"v: SIP/2.0/UDP 198.19.1.10:5060;rport;branch=z9hG4bKabc\r\n"
           b"f: <sip:51010000001186000001@5100000000>;tag=1\r\n"
           b"t: <sip:51000000002006000001@5100000000>\r\n"
           b"i: call-1\r\nCSeq: 7\r\n MESSAGE\r\nl: 4\r\n\r\nbodyEXTRA")
    msg = sip.parse(raw)
    assert msg.method == "MESSAGE" and msg.cseq == (7, "MESSAGE")
    assert msg.branch == "z9hG4bKabc" and msg.call_id == "call-1"
    assert msg.body == b"body"  # Content-Length wins over trailing bytes
    assert sip.uri_user(msg.get("From") or "") == "51010000001186000001"
    again = sip.parse(msg.encode())
    assert again.get("Via") == msg.get("Via") and again.body == b"body"


@pytest.mark.parametrize("raw, problem", [
    (b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n\r\n", "missing"),
    (b"HELLO\r\n\r\n", "request line"),
    (b"SIP/2.0 abc OK\r\n\r\n", "status line"),
    (b"no blank line", "blank line"),
])
def test_sip_parse_errors_say_what_is_wrong(raw: bytes, problem: str) -> None:
    with pytest.raises(sip.SipError, match=problem):
        sip.parse(raw)


def test_response_fills_received_and_rport_and_adds_a_to_tag() -> None:
    req = sip.request("REGISTER", "sip:a@b", [("Via", "SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1"),
                                              ("From", "<sip:a@b>;tag=f"), ("To", "<sip:a@b>"),
                                              ("Call-ID", "c"), ("CSeq", "1 REGISTER")])
    resp = sip.parse(sip.response_to(req, 401, to_tag="t", received=("127.0.0.1", 4000)).encode())
    assert resp.status == 401 and resp.reason == "Unauthorized"
    assert sip.header_param(resp.get("Via") or "", "rport") == "4000"
    assert sip.header_param(resp.get("Via") or "", "received") == "127.0.0.1"
    assert sip.header_param(resp.get("To") or "", "tag") == "t"


def test_digest_matches_rfc_2617_example() -> None:
    # RFC 2617 §3.5: Mufasa / Circle Of Life -> 6629fae49393a05397450978507c4ef1
    assert sip.digest_response(username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
                               method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                               qop="auth", nc="00000001", cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize("qop", ["auth", None])
def test_digest_authorize_then_verify_with_and_without_qop(qop: str | None) -> None:
    challenge = sip.Challenge.parse(sip.Challenge(realm=DOMAIN, nonce="n", qop=qop).header())
    creds = sip.Credentials.parse(sip.authorize(challenge, username=DEVICE, password="pw", method="REGISTER",
                                                uri="sip:x@y").header())
    assert creds.verify("pw", "REGISTER")
    assert not creds.verify("pw2", "REGISTER")
    assert not creds.verify("pw", "MESSAGE")


def test_nonces_are_ours_fresh_or_stale() -> None:
    maker = sip.NonceMaker(lifetime=10)
    nonce = maker.make(now=1000)
    assert maker.check(nonce, now=1005) == "ok"
    assert maker.check(nonce, now=1011) == "stale"
    assert maker.check(sip.NonceMaker().make(now=1000), now=1005) == "bad"  # another key


def test_manscdp_keepalive_and_catalog_with_chinese_names() -> None:
    doc = sip.parse_manscdp(sip.keepalive(5, DEVICE))
    assert (doc.root, doc.cmd_type, doc.sn, doc.device_id) == ("Notify", "Keepalive", 5, DEVICE)
    assert doc.element.findtext("Status") == "OK"
    body = sip.catalog_response(2, DEVICE, [sip.CatalogItem("51010000001326000001", "罐区摄像机")])
    assert b'encoding="GB2312"' in body
    assert [i.name for i in sip.catalog_items(sip.parse_manscdp(body))] == ["罐区摄像机"]
    with pytest.raises(sip.SipError, match="CmdType"):
        sip.parse_manscdp(b"<Notify><SN>1</SN></Notify>")
