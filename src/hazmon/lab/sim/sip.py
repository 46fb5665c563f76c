"""A small SIP (RFC 3261) message model, as GB/T 28181 uses it, shared by the registrar and the NVR.

What is here: parsing and building requests and responses (Via with branch, From/To tags, Call-ID,
CSeq, Contact, Expires, compact header names), RFC 2617 MD5 digest (challenge, credentials,
response; with or without qop=auth, since GB/T 28181 platforms use both), and the MANSCDP XML
bodies GB/T 28181 carries in SIP MESSAGE (Keepalive notify, Catalog query and response).
The digest functions are plain RFC 2617, so the NVR's HTTP (ISAPI) digest auth uses them too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

SIP_VERSION = "SIP/2.0"
BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7: every branch starts with the magic cookie
MANSCDP_TYPE = "Application/MANSCDP+xml"
MANSCDP_ENCODING = "GB2312"  # what GB/T 28181 devices declare; GB18030 is the codec that decodes it

# RFC 3261 §7.3.3 compact forms, mapped to the names this module writes.
COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
}

REASONS = {
    100: "Trying",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    481: "Call/Transaction Does Not Exist",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
}


class SipError(ValueError):
    """A datagram that is not a well-formed SIP message; the message says what is wrong."""


def _canonical(name: str) -> str:
    name = name.strip()
    return COMPACT.get(name.lower(), name) if len(name) == 1 else name


@dataclass
class SipMessage:
    """One SIP request (method and uri set) or response (status and reason set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        """The first header of that name (case-insensitive, compact forms understood)."""
        wanted = _canonical(name).lower()
        for key, value in self.headers:
            if _canonical(key).lower() == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        wanted = _canonical(name).lower()
        return [v for k, v in self.headers if _canonical(k).lower() == wanted]

    def set(self, name: str, value: str) -> None:
        """Replace every header of that name by one, or append it."""
        wanted = _canonical(name).lower()
        self.headers = [(k, v) for k, v in self.headers if _canonical(k).lower() != wanted]
        self.headers.append((name, value))

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        value = self.get("CSeq") or ""
        match = re.fullmatch(r"\s*(\d+)\s+(\S+)\s*", value)
        if not match:
            raise SipError(f"CSeq header {value!r}: expected '<number> <METHOD>'")
        return int(match.group(1)), match.group(2).upper()

    @property
    def branch(self) -> str | None:
        via = self.get("Via")
        return header_param(via, "branch") if via else None

    def encode(self) -> bytes:
        if self.is_request:
            start = f"{self.method} {self.uri} {SIP_VERSION}"
        else:
            start = f"{SIP_VERSION} {self.status} {self.reason or REASONS.get(self.status or 0, '')}"
        lines = [start]
        lines += [f"{k}: {v}" for k, v in self.headers if _canonical(k).lower() != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def parse(data: bytes) -> SipMessage:
    """Parse one UDP datagram into a SipMessage; raise SipError naming what is malformed."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")  # tolerate bare LF, as lenient stacks do
    if not sep:
        raise SipError("no blank line ends the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    raw_lines = text.replace("\r\n", "\n").split("\n")
    # Header folding (RFC 3261 §7.3.1): a line starting with white space continues the previous one.
    lines: list[str] = []
    for line in raw_lines:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    start, header_lines = lines[0].strip(), lines[1:]
    msg = SipMessage()
    if start.startswith(SIP_VERSION + " "):
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise SipError(f"status line {start!r}: expected 'SIP/2.0 <code> <reason>'")
        msg.status, msg.reason = int(parts[1]), (parts[2] if len(parts) > 2 else "")
    else:
        parts = start.split(" ")
        if len(parts) != 3 or parts[2] != SIP_VERSION:
            raise SipError(f"request line {start!r}: expected '<METHOD> <uri> SIP/2.0'")
        msg.method, msg.uri = parts[0].upper(), parts[1]
    for line in header_lines:
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SipError(f"header line {line!r}: expected 'Name: value'")
        msg.headers.append((_canonical(name), value.strip()))
    length = msg.get("Content-Length")
    if length is not None:
        if not length.strip().isdigit():
            raise SipError(f"Content-Length {length!r}: not a number")
        body = body[: int(length)]
    msg.body = body
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if msg.get(required) is None:
            raise SipError(f"missing {required} header (RFC 3261 §8.1.1)")
    msg.cseq  # noqa: B018 - validates the CSeq header now, so handlers can rely on it
    return msg


# ---------------------------------------------------------------- building


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(5)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def request(method: str, uri: str, headers: list[tuple[str, str]], body: bytes = b"") -> SipMessage:
    return SipMessage(method=method.upper(), uri=uri, headers=list(headers), body=body)


def response_to(req: SipMessage, status: int, to_tag: str | None = None,
                extra: list[tuple[str, str]] | None = None, body: bytes = b"",
                received: tuple[str, int] | None = None) -> SipMessage:
    """A response copying Via, From, To, Call-ID and CSeq from the request (RFC 3261 §8.2.6).

    `received` is the datagram's source: RFC 3581 says to fill in `received` and `rport` on
    the top Via so that the answer goes back through NAT to where the request came from.
    """
    vias = req.get_all("Via")
    if vias and received is not None:
        top = vias[0]
        top = set_param(top, "received", received[0])
        if re.search(r";\s*rport(?=[;\s]|$)", top) or header_param(top, "rport") is not None:
            top = set_param(top, "rport", str(received[1]))
        vias = [top, *vias[1:]]
    to = req.get("To") or ""
    if to_tag and header_param(to, "tag") is None:
        to = f"{to};tag={to_tag}"
    headers = [("Via", v) for v in vias]
    headers += [("From", req.get("From") or ""), ("To", to), ("Call-ID", req.call_id),
                ("CSeq", req.get("CSeq") or "")]
    headers += extra or []
    return SipMessage(status=status, reason=REASONS.get(status, ""), headers=headers, body=body)


# ---------------------------------------------------------------- header helpers


def header_param(value: str, name: str) -> str | None:
    """A `;name=value` parameter of a header (outside the <uri>); '' for a flag like `;rport`."""
    outside = re.sub(r"<[^>]*>", "", value)
    for part in outside.split(";")[1:]:
        key, eq, val = part.partition("=")
        if key.strip().lower() == name.lower():
            return val.strip().strip('"') if eq else ""
    return None


def set_param(value: str, name: str, new: str) -> str:
    """Set (or add) a `;name=value` header parameter, keeping the rest as it is."""
    pattern = re.compile(rf";\s*{re.escape(name)}(=[^;]*)?(?=;|$)", re.IGNORECASE)
    if pattern.search(value):
        return pattern.sub(f";{name}={new}", value, count=1)
    return f"{value};{name}={new}"


def uri_user(value: str) -> str | None:
    """The user part of the SIP URI in a header or a bare URI: `<sip:5101...@5100000000>;tag=x`."""
    match = re.search(r"sips?:([^@;>\s]+)@", value)
    return match.group(1) if match else None


def via_host_port(via: str) -> tuple[str, int]:
    """The sent-by host and port of a Via header (`SIP/2.0/UDP host:port;...`), port 5060 by default."""
    match = re.match(r"\s*SIP/2\.0/\w+\s+([^;:\s]+)(?::(\d+))?", via)
    if not match:
        raise SipError(f"Via header {via!r}: expected 'SIP/2.0/UDP host[:port]'")
    return match.group(1), int(match.group(2) or 5060)


# ---------------------------------------------------------------- digest (RFC 2617, MD5)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # RFC 2617 and GB/T 28181 mandate MD5


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split `Digest a="x, y", b=z` into ('Digest', {'a': 'x, y', 'b': 'z'}); quoted commas kept."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for match in re.finditer(r'([A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)', rest):
        raw = match.group(2)
        params[match.group(1).lower()] = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
    return scheme, params


def digest_response(*, username: str, realm: str, password: str, method: str, uri: str, nonce: str,
                    qop: str | None = None, nc: str | None = None, cnonce: str | None = None) -> str:
    """RFC 2617 §3.2.2.1 request-digest, MD5, with qop=auth or without qop (RFC 2069 style)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


@dataclass
class Challenge:
    """A WWW-Authenticate: Digest challenge."""

    realm: str
    nonce: str
    qop: str | None = "auth"
    opaque: str | None = None
    stale: bool = False
    algorithm: str = "MD5"

    def header(self) -> str:
        parts = [f'realm="{self.realm}"', f'nonce="{self.nonce}"']
        if self.opaque is not None:
            parts.append(f'opaque="{self.opaque}"')
        if self.qop:
            parts.append(f'qop="{self.qop}"')
        parts.append(f"algorithm={self.algorithm}")
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, p = parse_auth_params(value)
        if scheme.lower() != "digest" or "nonce" not in p:
            raise SipError(f"WWW-Authenticate {value!r}: not a Digest challenge with a nonce")
        qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        if qops and "auth" not in qops:
            raise SipError(f"WWW-Authenticate {value!r}: only qop=auth is supported")
        return cls(realm=p.get("realm", ""), nonce=p["nonce"], qop="auth" if qops else None,
                   opaque=p.get("opaque"), stale=p.get("stale", "").lower() == "true",
                   algorithm=p.get("algorithm", "MD5"))


@dataclass
class Credentials:
    """An Authorization: Digest header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    algorithm: str = "MD5"

    def header(self) -> str:
        parts = [f'username="{self.username}"', f'realm="{self.realm}"', f'nonce="{self.nonce}"',
                 f'uri="{self.uri}"', f'response="{self.response}"', f"algorithm={self.algorithm}"]
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={self.nc}", f'cnonce="{self.cnonce}"']
        if self.opaque is not None:
            parts.append(f'opaque="{self.opaque}"')
        return "Digest " + ", ".join(parts)

    @classmethod
    def parse(cls, value: str) -> Credentials:
        scheme, p = parse_auth_params(value)
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
        if scheme.lower() != "digest" or missing:
            raise SipError(f"Authorization {value!r}: not Digest credentials (missing {missing})")
        return cls(username=p["username"], realm=p["realm"], nonce=p["nonce"], uri=p["uri"],
                   response=p["response"].lower(), qop=p.get("qop"), nc=p.get("nc"),
                   cnonce=p.get("cnonce"), opaque=p.get("opaque"), algorithm=p.get("algorithm", "MD5"))

    def verify(self, password: str, method: str) -> bool:
        if self.algorithm.upper() != "MD5" or (self.qop and self.qop != "auth"):
            return False
        if self.qop and not (self.nc and self.cnonce):
            return False
        expected = digest_response(username=self.username, realm=self.realm, password=password,
                                   method=method, uri=self.uri, nonce=self.nonce, qop=self.qop,
                                   nc=self.nc, cnonce=self.cnonce)
        return hmac.compare_digest(expected, self.response)


def authorize(challenge: Challenge, *, username: str, password: str, method: str, uri: str,
              nc: int = 1) -> Credentials:
    """Answer a challenge (the client side)."""
    cnonce = secrets.token_hex(8) if challenge.qop else None
    nc_text = f"{nc:08x}" if challenge.qop else None
    response = digest_response(username=username, realm=challenge.realm, password=password,
                               method=method, uri=uri, nonce=challenge.nonce, qop=challenge.qop,
                               nc=nc_text, cnonce=cnonce)
    return Credentials(username=username, realm=challenge.realm, nonce=challenge.nonce, uri=uri,
                       response=response, qop=challenge.qop, nc=nc_text, cnonce=cnonce,
                       opaque=challenge.opaque)


@dataclass
class NonceMaker:
    """Stateless nonces: time plus an HMAC under a per-process key, so no table of issued nonces."""

    lifetime: float = 300.0
    key: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def make(self, now: float | None = None) -> str:
        stamp = f"{int(now if now is not None else time.time()):x}"
        return stamp + hmac.new(self.key, stamp.encode(), hashlib.sha256).hexdigest()[:24]

    def check(self, nonce: str, now: float | None = None) -> str:
        """'ok', 'stale' (ours but too old: re-challenge with stale=true) or 'bad' (not ours)."""
        stamp, mac = nonce[:-24], nonce[-24:]
        good = hmac.new(self.key, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        if not stamp or not hmac.compare_digest(mac, good):
            return "bad"
        try:
            issued = int(stamp, 16)
        except ValueError:
            return "bad"
        return "ok" if (now if now is not None else time.time()) - issued <= self.lifetime else "stale"


# ---------------------------------------------------------------- MANSCDP bodies (GB/T 28181 §A)


@dataclass
class Manscdp:
    """A parsed MANSCDP document: its root (Notify, Query, Response, Control), CmdType, SN, DeviceID."""

    root: str
    cmd_type: str
    sn: int
    device_id: str
    element: ET.Element


def _xml(root: ET.Element) -> bytes:
    text = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="{MANSCDP_ENCODING}"?>\n{text}\n'.encode("gb18030")


def _doc(root: str, cmd_type: str, sn: int, device_id: str) -> ET.Element:
    el = ET.Element(root)
    ET.SubElement(el, "CmdType").text = cmd_type
    ET.SubElement(el, "SN").text = str(sn)
    ET.SubElement(el, "DeviceID").text = device_id
    return el


def keepalive(sn: int, device_id: str, status: str = "OK") -> bytes:
    el = _doc("Notify", "Keepalive", sn, device_id)
    ET.SubElement(el, "Status").text = status
    return _xml(el)


def catalog_query(sn: int, device_id: str) -> bytes:
    return _xml(_doc("Query", "Catalog", sn, device_id))


@dataclass
class CatalogItem:
    device_id: str
    name: str
    status: str = "ON"  # ON / OFF
    manufacturer: str = ""
    model: str = ""
    parent_id: str = ""
    address: str = ""


def catalog_response(sn: int, device_id: str, items: list[CatalogItem]) -> bytes:
    el = _doc("Response", "Catalog", sn, device_id)
    ET.SubElement(el, "SumNum").text = str(len(items))
    lst = ET.SubElement(el, "DeviceList", Num=str(len(items)))
    for item in items:
        it = ET.SubElement(lst, "Item")
        for tag, value in (("DeviceID", item.device_id), ("Name", item.name),
                           ("Manufacturer", item.manufacturer), ("Model", item.model),
                           ("Owner", "Owner"), ("CivilCode", item.device_id[:6]),
                           ("Address", item.address), ("Parental", "0"), ("ParentID", item.parent_id),
                           ("SafetyWay", "0"), ("RegisterWay", "1"), ("Secrecy", "0"),
                           ("Status", item.status)):
            ET.SubElement(it, tag).text = value
    return _xml(el)


def catalog_items(doc: Manscdp) -> list[CatalogItem]:
    items = []
    for it in doc.element.iter("Item"):
        items.append(CatalogItem(device_id=it.findtext("DeviceID", ""), name=it.findtext("Name", ""),
                                 status=it.findtext("Status", ""),
                                 manufacturer=it.findtext("Manufacturer", ""),
                                 model=it.findtext("Model", ""), parent_id=it.findtext("ParentID", ""),
                                 address=it.findtext("Address", "")))
    return items


def parse_manscdp(body: bytes) -> Manscdp:
    """Parse a MANSCDP body. Expat cannot decode multi-byte charsets, so decode first (GB18030 ⊇ GB2312)."""
    match = re.match(rb'\s*<\?xml[^>]*encoding=["\']([^"\']+)["\'][^>]*\?>', body)
    codec = (match.group(1).decode("ascii").lower() if match else "utf-8")
    if codec in ("gb2312", "gbk", "gb18030"):
        codec = "gb18030"
    try:
        text = body.decode(codec)
    except (LookupError, UnicodeDecodeError) as exc:
        raise SipError(f"MANSCDP body: cannot decode as {codec}: {exc}") from None
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    try:
        el = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SipError(f"MANSCDP body: not XML: {exc}") from None
    cmd, sn, dev = el.findtext("CmdType"), el.findtext("SN"), el.findtext("DeviceID")
    if not cmd or not dev or not (sn or "").strip().isdigit():
        raise SipError(f"MANSCDP <{el.tag}>: CmdType, SN (a number) and DeviceID are required")
    return Manscdp(root=el.tag, cmd_type=cmd.strip(), sn=int(sn or 0), device_id=dev.strip(), element=el)
