"""A small Hikvision ISAPI client: XML over HTTPS (or HTTP) with digest auth (RFC 2617), standard library only.

Hikvision devices answer an unauthenticated request with 401 and a digest challenge whose realm is
the device model; urllib's digest handler answers it. Errors come back as a <ResponseStatus> with a
statusCode (1 = OK) and a subStatusCode naming the cause, which IsapiError carries.

ISAPI PUTs replace a resource: the safe way to change a few fields is to GET the document, change
those fields in the tree, and PUT the whole tree back (set_field), so that vendor fields the
client does not know survive.

N8 (secure transmission): Hikvision devices serve ISAPI on 443 with a device certificate. Over
HTTPS the certificate is verified against the CA bundle given (`ca_file`, else the system's), and
its name must be the address used. Plain HTTP is for devices without HTTPS, and then no secret
(an element named like a password) ever goes in a body, unless the caller opted in by name
(`insecure_secrets_over_http`). Digest auth keeps the login itself out of the clear either way.
"""

from __future__ import annotations

import http.client
import re
import ssl
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

NS = "http://www.hikvision.com/ver20/XMLSchema"
# Elements that carry a secret in ISAPI bodies (password, oldPassword, loginPassword, passwd, ...).
SECRET_FIELD = re.compile(r"password|passwd|secret", re.IGNORECASE)
INSECURE_OPT_IN = "insecure_secrets_over_http"


class IsapiError(Exception):
    """An ISAPI request failed: the message names the device, the request and the cause."""

    def __init__(self, message: str, status: int | None = None, sub_status: str | None = None) -> None:
        super().__init__(message)
        self.status, self.sub_status = status, sub_status


class InsecureTransportError(IsapiError):
    """A secret would have gone to the device over plain HTTP (N8): nothing was sent."""


def local(tag: str) -> str:
    """An element's name without its XML namespace."""
    return tag.rsplit("}", 1)[-1]


def find(root: ET.Element, name: str) -> ET.Element | None:
    """The first element of that local name anywhere under root (firmware versions nest differently)."""
    return next((el for el in root.iter() if local(el.tag) == name), None)


def text(root: ET.Element, name: str) -> str | None:
    el = find(root, name)
    return None if el is None else (el.text or "").strip()


def set_field(parent: ET.Element, name: str, value: str) -> None:
    """Set a field found anywhere under parent, or add it to parent (in the parent's namespace)."""
    el = find(parent, name)
    if el is None:
        ns = parent.tag[: parent.tag.index("}") + 1] if parent.tag.startswith("{") else ""
        el = ET.SubElement(parent, ns + name)
    el.text = value


def element(tag: str) -> ET.Element:
    """A new root element in Hikvision's namespace, with the version attribute devices expect."""
    return ET.Element(tag, {"version": "2.0", "xmlns": NS})


def sub(parent: ET.Element, tag: str, value: object = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if value is not None:
        el.text = str(value).lower() if isinstance(value, bool) else str(value)
    return el


def secret_fields(root: ET.Element) -> list[str]:
    """The names of the elements under root that hold a secret (non-empty password-like fields)."""
    return sorted({local(el.tag) for el in root.iter() if SECRET_FIELD.search(local(el.tag)) and (el.text or "")})


def to_bytes(root: ET.Element) -> bytes:
    ET.register_namespace("", NS)  # keep Hikvision's default namespace instead of ns0: prefixes
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


@dataclass
class Isapi:
    """One device: base_url like https://198.19.1.10 (port included when not the scheme's own).

    `device` names it in every message (e.g. "NVR nvr1 of 91510100MALABE0001"); `ca_file` is the
    CA bundle its HTTPS certificate must chain to (None: the system's trust store)."""

    base_url: str
    username: str
    password: str = field(repr=False)
    timeout: float = 10.0
    ca_file: Path | str | None = None
    insecure_secrets_over_http: bool = False
    device: str = ""

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        scheme = urlsplit(self.base_url).scheme
        if scheme not in ("https", "http"):
            raise IsapiError(f"{self.name}: {self.base_url}: ISAPI is reached over https:// or http://")
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, self.base_url, self.username, self.password)
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPDigestAuthHandler(manager)]
        if self.secure:
            handlers.append(urllib.request.HTTPSHandler(context=self._tls_context()))
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def name(self) -> str:
        return self.device or self.base_url

    @property
    def trust(self) -> str:
        return f"the CA bundle {self.ca_file}" if self.ca_file else "the control node's system trust store"

    def _tls_context(self) -> ssl.SSLContext:
        """Certificate and name verified (the default context's CERT_REQUIRED and check_hostname)."""
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise IsapiError(f"{self.name}: cannot load {self.trust} to verify the device's HTTPS certificate: "
                             f"{reason}") from None

    def check_secret_transport(self, what: str) -> None:
        """Refuse (N8) before a secret goes to the device over plain HTTP without the explicit opt-in."""
        if self.secure or self.insecure_secrets_over_http:
            return
        raise InsecureTransportError(
            f"N8: {self.name}: refusing to send {what} over plain HTTP ({self.base_url}): secrets go to devices "
            "only over HTTPS (secure transmission). Record the device's HTTPS in the inventory (the NVR's "
            "`isapi: {scheme: https}`, the default), or, for a device that has no HTTPS, opt in explicitly "
            f"with {INSECURE_OPT_IN}. Nothing was sent.")

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        what = f"{self.device + ': ' if self.device else ''}{method} {self.base_url}{path}"
        request = urllib.request.Request(self.base_url + path, data=body, method=method,
                                         headers={"Content-Type": "application/xml; charset=UTF-8"} if body else {})
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            if exc.code == 401:
                raise IsapiError(f"{what}: the device refused user {self.username!r} (wrong password, or the "
                                 "account is locked after too many failures)", 401, "unAuthorized") from None
            raise _status_error(what, exc.code, payload) from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise IsapiError(
                    f"{what}: the device's HTTPS certificate failed verification against {self.trust} "
                    f"({str(reason.verify_message).rstrip('.')}): it must be signed by a CA in that bundle and name "
                    "the address used (N8: secure transmission). Nothing was sent.") from None
            if isinstance(reason, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                raise IsapiError(f"{what}: no answer from the device (it closed the connection during the TLS "
                                 "handshake)") from None
            if isinstance(reason, ssl.SSLError):
                raise IsapiError(f"{what}: the TLS handshake failed ({reason.reason or reason}): does the device "
                                 "serve HTTPS on this port? Nothing was sent.") from None
            raise IsapiError(f"{what}: no answer from the device ({reason})") from None

    def get(self, path: str) -> ET.Element:
        payload = self._request("GET", path)
        try:
            return ET.fromstring(payload)
        except ET.ParseError as exc:
            raise IsapiError(f"GET {self.base_url}{path}: the answer is not XML ({exc})") from None

    def put(self, path: str, root: ET.Element) -> None:
        """PUT a document; a <ResponseStatus> other than statusCode 1 raises IsapiError. A body holding
        a secret is refused over plain HTTP without the opt-in (N8)."""
        secrets = secret_fields(root)
        if secrets:
            self.check_secret_transport(f"<{'>, <'.join(secrets)}> in PUT {path}")
        payload = self._request("PUT", path, to_bytes(root))
        with _suppress_parse():
            status = ET.fromstring(payload)
            if local(status.tag) == "ResponseStatus" and text(status, "statusCode") not in ("1", None):
                raise _status_error(f"PUT {self.base_url}{path}", 200, payload)


class _suppress_parse:
    """A device that answers a PUT with an empty body or plain text has still accepted it."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is ET.ParseError


def _status_error(what: str, code: int, payload: bytes) -> IsapiError:
    try:
        status = ET.fromstring(payload)
    except ET.ParseError:
        return IsapiError(f"{what}: HTTP {code}", code)
    sub_status = text(status, "subStatusCode")
    detail = text(status, "errorMsg") or text(status, "statusString") or ""
    return IsapiError(f"{what}: HTTP {code}, {sub_status}: {detail}".rstrip(": "), code, sub_status)
