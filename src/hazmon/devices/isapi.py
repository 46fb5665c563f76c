"""A small Hikvision ISAPI client: XML over HTTP with digest auth (RFC 2617), standard library only.

Hikvision devices answer an unauthenticated request with 401 and a digest challenge whose realm is
the device model; urllib's digest handler answers it. Errors come back as a <ResponseStatus> with a
statusCode (1 = OK) and a subStatusCode naming the cause, which IsapiError carries.

ISAPI PUTs replace a resource: the safe way to change a few fields is to GET the document, change
those fields in the tree, and PUT the whole tree back (set_field), so that vendor fields the
client does not know survive.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS = "http://www.hikvision.com/ver20/XMLSchema"


class IsapiError(Exception):
    """An ISAPI request failed: the message names the device, the request and the cause."""

    def __init__(self, message: str, status: int | None = None, sub_status: str | None = None) -> None:
        super().__init__(message)
        self.status, self.sub_status = status, sub_status


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


def to_bytes(root: ET.Element) -> bytes:
    ET.register_namespace("", NS)  # keep Hikvision's default namespace instead of ns0: prefixes
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


@dataclass
class Isapi:
    """One device: base_url like http://198.19.1.10 (port included when not 80)."""

    base_url: str
    username: str
    password: str = field(repr=False)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, self.base_url, self.username, self.password)
        self._opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        what = f"{method} {self.base_url}{path}"
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
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise IsapiError(f"{what}: no answer from the device ({reason})") from None

    def get(self, path: str) -> ET.Element:
        payload = self._request("GET", path)
        try:
            return ET.fromstring(payload)
        except ET.ParseError as exc:
            raise IsapiError(f"GET {self.base_url}{path}: the answer is not XML ({exc})") from None

    def put(self, path: str, root: ET.Element) -> None:
        """PUT a document; a <ResponseStatus> other than statusCode 1 raises IsapiError."""
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
