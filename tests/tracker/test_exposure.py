"""Exposure (N8, R4): the JSON API requires the vault's bearer token; what stays open (/metrics,
/healthz, for Prometheus) names no enterprise, confidential (保密) ones included; a client that
sends nothing or trickles cannot hold a handler thread; the API builds its answers outside the
ingest lock.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazmon.testing.procs import Mosquitto
from hazmon.tracker.api import TrackerApi
from hazmon.tracker.app import AppConfig, TrackerApp
from hazmon.tracker.expected import load_expectations
from hazmon.tracker.main import build_parser, config_from_args
from hazmon.tracker.mqtt import BrokerConfig
from hazmon.tracker.service import Tracker
from hazmon.tracker.settings import SettingsError, TrackerSettings
from tracker.helpers import GOOD, TOKEN, Publisher, get, wait_for, write_token
from tracker.inventory import CONFIDENTIAL_CODE, CONFIDENTIAL_NAME, LAB_CODE, write_inventory

API_PATHS = ("/api/v1/enterprises", f"/api/v1/enterprises/{LAB_CODE}", f"/api/v1/tags?enterprise={LAB_CODE}",
             "/api/v1/no-such-thing")


def start_app(inventory: Path, tmp_path: Path, broker: Mosquitto, **config: object) -> TrackerApp:
    app = TrackerApp(AppConfig(inventory, tmp_path / "tracker.db", BrokerConfig(broker.host, broker.port, "exposure"),
                               "127.0.0.1", 0, **config))
    app.start()
    assert app.feed.subscribed.wait(10)
    return app


@pytest.fixture
def confidential_inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "inventory-r4", confidential=True)


@pytest.fixture
def app(confidential_inventory: Path, tmp_path: Path, broker: Mosquitto) -> Iterator[TrackerApp]:
    running = start_app(confidential_inventory, tmp_path, broker, api_token=TOKEN)
    yield running
    running.stop()


def raw_get(port: int, path: str, authorization: str | None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if authorization is not None:
        req.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        assert exc.code != 401 or exc.headers["WWW-Authenticate"] == 'Bearer realm="hazmon-tracker"'
        return exc.code


@pytest.mark.integration
def test_the_api_requires_the_token(app: TrackerApp) -> None:
    port = app.http.port
    for path in API_PATHS:
        for wrong in (None, "", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}",
                      "Bearer " + "é" * 10):
            assert raw_get(port, path, wrong) == 401, (path, wrong)
    assert raw_get(port, API_PATHS[0], f"Bearer {TOKEN}") == 200
    assert raw_get(port, API_PATHS[0], f"bearer  {TOKEN} ") == 200
    assert raw_get(port, API_PATHS[3], f"Bearer {TOKEN}") == 404  # 401 first: no hint of what exists
    assert get(port, "/metrics", token=None)[0] == 200
    assert get(port, "/healthz", token=None)[0] == 200


@pytest.mark.integration
def test_without_a_configured_token_the_api_refuses_everything(
        inventory: Path, tmp_path: Path, broker: Mosquitto) -> None:
    app = start_app(inventory, tmp_path, broker)
    try:
        for path in API_PATHS:
            assert get(app.http.port, path, token=None)[0] == 401
            assert get(app.http.port, path, token="anything")[0] == 401
        assert get(app.http.port, "/metrics", token=None)[0] == 200
    finally:
        app.stop()


@pytest.mark.integration
def test_what_is_open_names_no_enterprise(app: TrackerApp, publisher: Publisher) -> None:
    port = app.http.port
    publisher.batch(CONFIDENTIAL_CODE, 1, {"GT-401": 37.25}, time.time(), source="gds")
    publisher.batch(LAB_CODE, 1, GOOD, time.time())
    wait_for(lambda: app.tracker.state.sources[(CONFIDENTIAL_CODE, "gds")].accepted == 1, what="its sample")
    app.tracker.evaluate()
    names = [e.name for e in app.tracker.state.enterprises.values()]
    assert CONFIDENTIAL_NAME in names
    for path in ("/metrics", "/healthz"):
        status, body = get(port, path, token=None)
        text = body.decode()
        assert status == 200 and not [n for n in names if n in text], path
        assert "37.25" not in text  # no tag value either: counts and flags
    # The holder of the token sees it, annotated (R4): the API is where names live.
    ents = json.loads(get(port, "/api/v1/enterprises")[1])["enterprises"]
    mine = next(e for e in ents if e["code"] == CONFIDENTIAL_CODE)
    assert mine["name"] == CONFIDENTIAL_NAME and mine["annotations"] == ["confidential"]


def closed_within(sock: socket.socket, deadline: float) -> bool:
    """True once the server has closed the connection (EOF or reset) before the deadline."""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if sock.recv(4096) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


@pytest.mark.integration
def test_a_silent_or_trickling_client_is_cut_off(
        inventory: Path, tmp_path: Path, broker: Mosquitto) -> None:
    """The default http_request_timeout_seconds (10 s); the old server held both forever."""
    app = start_app(inventory, tmp_path, broker)
    limit = 10.0
    try:
        port = app.http.port
        silent = socket.create_connection(("127.0.0.1", port))
        trickler = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
        cut = False
        for byte in request:  # one byte every 0.1 s: 25 s for the request, each read well in time
            try:
                trickler.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            if closed_within(trickler, time.monotonic() + 0.1):
                cut = True
                break
            # Meanwhile the server answers others.
            if time.monotonic() - started > 2 and byte == ord("a"):
                assert get(port, "/healthz", token=None)[0] == 200
        took = time.monotonic() - started
        assert cut and took < limit + 10, f"the trickling client was not cut off ({took:.1f} s)"
        assert closed_within(silent, started + limit + 10), "the silent client was not cut off"
        silent.close()
        trickler.close()
    finally:
        app.stop()


def test_api_answers_are_built_outside_the_ingest_lock(inventory: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TrackerSettings()
    t = Tracker(load_expectations(inventory, settings.thresholds), settings, tmp_path / "s.db")
    api = TrackerApi(t)
    built = []
    real = TrackerApi._tag_views

    def checked(self: TrackerApi, *args: object) -> list:
        assert not t.lock.locked(), "a view built while holding the ingest lock"
        built.append(args[0])
        return real(self, *args)

    monkeypatch.setattr(TrackerApi, "_tag_views", checked)
    assert api.enterprise(LAB_CODE) is not None
    assert api.tags({"enterprise": [LAB_CODE]})[0] == 200
    assert built == [LAB_CODE, LAB_CODE]
    t.close()


def test_the_token_file_must_be_private(inventory: Path, tmp_path: Path) -> None:
    token = write_token(tmp_path / "api.token")
    args = ["--inventory", str(inventory), "--state", str(tmp_path / "s.db"), "--api-token-file", str(token)]
    assert config_from_args(build_parser().parse_args(args)).api_token == TOKEN
    assert TOKEN not in repr(config_from_args(build_parser().parse_args(args)))
    token.chmod(0o644)
    with pytest.raises(SettingsError, match=r"api\.token.*group or others"):
        config_from_args(build_parser().parse_args(args))
    token.chmod(0o600)
    token.write_text("two words\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"api\.token.*one word"):
        config_from_args(build_parser().parse_args(args))


@pytest.mark.integration
def test_the_lab_helpers_send_the_vault_token(app: TrackerApp, confidential_inventory: Path, tmp_path: Path) -> None:
    """What the lab's tests and demo use (hazmon.lab.datapath) passes the token the vault holds."""
    from hazmon.inventory.secrets import TRACKER_API_CREDENTIAL, credential_refs
    from hazmon.inventory.validate import load_valid
    from hazmon.lab import datapath

    inv, _ = load_valid(confidential_inventory)
    assert TRACKER_API_CREDENTIAL in credential_refs(inv)  # so the lab vault generates it
    url = f"http://127.0.0.1:{app.http.port}"
    setup = datapath.TrackerSetup("", [], tmp_path / "unused.db", url, tmp_path, token=TOKEN)
    assert TOKEN not in repr(setup)
    assert len(datapath.tracker_json(setup, "/api/v1/enterprises")["enterprises"]) == 3
    assert datapath.tracker_json(url, f"/api/v1/enterprises/{LAB_CODE}", TOKEN)["code"] == LAB_CODE
    with pytest.raises(urllib.error.HTTPError) as refused:
        datapath.tracker_json(url, "/api/v1/enterprises")
    assert refused.value.code == 401
    assert "hazmon_tracker_mqtt_connected 1.0" in datapath.tracker_get(url, "/metrics")
