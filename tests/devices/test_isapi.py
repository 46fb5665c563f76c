"""The ISAPI client's transport rules (N8), without a device: where the model says an NVR is reached,
and that a secret is refused over plain HTTP before any connection is made."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hazmon.devices import gb28181, isapi
from hazmon.devices.isapi import Isapi, IsapiError, element, sub
from hazmon.devices.site import find_nvr
from hazmon.inventory import model
from hazmon.inventory.loader import Inventory


def closed_port() -> int:
    """A loopback port nothing listens on: a request there fails as 'no answer', not as a refusal."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sip_doc(password: str | None) -> object:
    root = element("SIPServerList")
    gb = sub(sub(root, "SIPServer"), "GB28181")
    sub(gb, "enabled", True)
    if password is not None:
        sub(gb, "password", password)
    return root


def test_the_model_reaches_an_nvr_over_https_unless_it_records_otherwise(lab_inventory: Inventory) -> None:
    ent = lab_inventory.enterprise("labe0001")
    nvr = find_nvr(ent, "nvr1")
    assert nvr.isapi == model.IsapiAccess(scheme="https", port=None)  # the default: no inventory had to change
    assert gb28181.isapi_url(nvr) == f"https://{nvr.address}"
    assert gb28181.isapi_url(nvr.model_copy(update={"isapi": model.IsapiAccess(port=8443)})) == f"https://{nvr.address}:8443"
    plain = nvr.model_copy(update={"isapi": model.IsapiAccess(scheme="http")})
    assert gb28181.isapi_url(plain) == f"http://{nvr.address}"
    assert gb28181.isapi_url(plain, "127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert gb28181.isapi_url(nvr, "127.0.0.1", scheme="http") == "http://127.0.0.1"
    client = gb28181.nvr_client(ent, nvr, "admin", "pw")
    assert client.secure and client.name == "NVR nvr1 of 91510100MALABE0001"


def test_a_secret_is_refused_over_plain_http_before_connecting() -> None:
    port = closed_port()
    client = Isapi(f"http://127.0.0.1:{port}", "admin", "pw", timeout=2, device="NVR nvr1 of X")
    with pytest.raises(IsapiError) as refused:
        client.put(gb28181.SIP_PATH, sip_doc("s3cr3t-sip"))
    message = str(refused.value)
    assert "no answer" not in message, "the client tried to send the password over plain HTTP"
    assert isinstance(refused.value, isapi.InsecureTransportError)
    assert message.startswith("N8: NVR nvr1 of X: refusing to send <password> in PUT /ISAPI/System/Network/SIP "
                              f"over plain HTTP (http://127.0.0.1:{port})")
    assert "insecure_secrets_over_http" in message and "s3cr3t-sip" not in message
    # No secret in the body: it goes (and finds no device there).
    with pytest.raises(IsapiError, match="no answer from the device"):
        client.put(gb28181.SIP_PATH, sip_doc(None))
    # The named opt-in lets it go too.
    opted = Isapi(f"http://127.0.0.1:{port}", "admin", "pw", timeout=2, insecure_secrets_over_http=True)
    with pytest.raises(IsapiError, match="no answer from the device"):
        opted.put(gb28181.SIP_PATH, sip_doc("s3cr3t-sip"))


def test_https_needs_a_readable_ca_bundle(tmp_path: Path) -> None:
    with pytest.raises(IsapiError, match=r"^NVR nvr1 of X: cannot load the CA bundle .*missing.pem to verify"):
        Isapi("https://127.0.0.1", "admin", "pw", ca_file=tmp_path / "missing.pem", device="NVR nvr1 of X")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(IsapiError, match="cannot load the CA bundle"):
        Isapi("https://127.0.0.1", "admin", "pw", ca_file=tmp_path / "junk.pem")
    with pytest.raises(IsapiError, match="over https:// or http://"):
        Isapi("ftp://127.0.0.1", "admin", "pw")


def test_secret_fields_are_found_wherever_they_sit() -> None:
    root = element("UserList")
    user = sub(root, "User")
    sub(user, "userName", "ops")
    sub(user, "password", "x")
    sub(user, "oldPassword", "y")
    sub(user, "passwordLevel", "")  # empty: nothing secret in it
    assert isapi.secret_fields(root) == ["oldPassword", "password"]
    assert isapi.secret_fields(sip_doc(None)) == []
