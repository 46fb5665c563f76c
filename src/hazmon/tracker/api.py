"""One HTTP port: /metrics for Prometheus, /healthz, and /api/v1/... JSON for people and the nightly report.

GET /api/v1/enterprises                 every enterprise with its sources' evaluated figures
GET /api/v1/enterprises/<code>          one enterprise, with every tag of every source
GET /api/v1/tags?enterprise=<code>[&source=<name>][&flag=<flag>]
                                        tags of one enterprise (required: responses stay bounded)
GET /healthz                            200 while every internal loop is alive and not stale, else
                                        503 naming the loop (text, one line per loop)
Per-tag flags use the time of the last evaluation, so the API agrees with /metrics.

Exposure (N8): the JSON API carries enterprise names (confidential ones too, R4) and live
values, so it requires `Authorization: Bearer <token>`, the token from the vault (compared in
constant time); without a configured token it refuses every request. /metrics and /healthz stay
open on the platform network: Prometheus scrapes without secrets, and they carry enterprise
codes, city codes, counts and flags, never a name or a tag's value. Every connection must send
its request whole within http_request_timeout_seconds, so that a client that sends nothing or
trickles a byte at a time cannot hold a handler thread. Responses are built outside the ingest
lock from copies taken under it.
"""

from __future__ import annotations

import hmac
import io
import json
import math
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from hazmon.tracker.evaluate import SourceEval, tag_flags
from hazmon.tracker.expected import ExpectedEnterprise
from hazmon.tracker.metrics import TrackerCollector
from hazmon.tracker.service import Tracker
from hazmon.tracker.state import TagState

API = "/api/v1"
FLAGS = ("stale", "flatlined", "out_of_range", "rate_violation", "in_alarm")


def _num(x: float) -> float | None:
    """JSON has no infinity: 'never' is null."""
    return x if math.isfinite(x) else None


def source_summary(se: SourceEval | None, last_sample: float, last_receive: float) -> dict[str, Any]:
    out: dict[str, Any] = {"last_sample_ts": _num(last_sample), "last_receive_ts": _num(last_receive)}
    if se is not None:
        out |= {
            "source": se.source, "expected": se.expected, "expected_tags": se.expected_tags,
            "seen_tags": se.seen_tags, "fresh_tags": se.fresh_tags,
            "completeness": se.completeness if se.expected else None, "stalled": se.stalled,
            "flatlined": se.flatlined, "out_of_range": se.out_of_range, "rate_violation": se.rate_violation,
            "in_alarm": dict(se.in_alarm),
        }
    return out


class TrackerApi:
    """The JSON views, apart from HTTP so that they can be tested and reused.

    Under the tracker's lock only copies are taken (two floats per source, one small TagState
    per tag); flags and JSON are built after it is released."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def _copy_tags(self, code: str, source: str) -> list[tuple[str, Any, TagState | None]]:
        """Caller holds the tracker lock: each listed tag's spec and a copy of its state."""
        st = self.tracker.state.sources[(code, source)]
        out = []
        for tcode, spec in st.spec.tags.items():
            tag = st.tags.get(tcode)
            copy = None if tag is None else TagState(spec, tag.ts, tag.value, tag.change_ts,
                                                     tag.rate_violation_ts, tag.alarm)
            out.append((tcode, spec, copy))
        return out

    def _tag_views(self, code: str, source: str, tags: list[tuple[str, Any, TagState | None]],
                   now: float, flag: str | None) -> list[dict[str, Any]]:
        th = self.tracker.settings.thresholds
        out = []
        for tcode, spec, tag in tags:
            f = tag_flags(spec, tag, now, th)
            flags = {"stale": not f.fresh, "flatlined": f.flatlined, "out_of_range": f.out_of_range,
                     "rate_violation": f.rate_violation, "in_alarm": bool(f.alarm)}
            if flag is not None and not flags[flag]:
                continue
            seen = tag is not None and tag.seen
            out.append({
                "enterprise": code, "source": source, "tag": tcode,
                "kind": spec.kind.value, "unit": spec.unit,
                "interval": spec.interval, "window": spec.window,
                "range_min": spec.range_min, "range_max": spec.range_max,
                "ts": tag.ts if seen else None, "value": tag.value if seen else None,
                "age": now - tag.ts if seen else None,
                "unchanged_for": tag.ts - tag.change_ts if seen else None,
                "last_rate_violation_ts": _num(tag.rate_violation_ts) if seen else None,
                "alarm": f.alarm or None, **flags,
            })
        return out

    def _enterprise(self, ent: ExpectedEnterprise, with_tags: bool) -> dict[str, Any]:
        t, ev = self.tracker, self.tracker.evaluation
        copies = []
        with t.lock:
            for name in ent.sources:
                st = t.state.sources[(ent.code, name)]
                copies.append((name, st.last_sample_ts, st.last_receive_ts,
                               self._copy_tags(ent.code, name) if with_tags else None))
        sources = []
        for name, last_sample, last_receive, tags in copies:
            item = {"source": name} | source_summary(ev.sources.get((ent.code, name)), last_sample, last_receive)
            if tags is not None:
                item["tags"] = self._tag_views(ent.code, name, tags, ev.at, None)
            sources.append(item)
        return {"code": ent.code, "name": ent.name, "city": ent.city, "state": ent.state,
                "annotations": list(ent.annotations), "expected": ent.expected, "sources": sources}

    def enterprises(self) -> dict[str, Any]:
        ents = self.tracker.state.enterprises.values()
        return {"evaluated_at": self.tracker.evaluation.at,
                "enterprises": [self._enterprise(e, with_tags=False) for e in ents]}

    def enterprise(self, code: str) -> dict[str, Any] | None:
        ent = self.tracker.state.enterprises.get(code)
        if ent is None:
            return None
        return {"evaluated_at": self.tracker.evaluation.at} | self._enterprise(ent, with_tags=True)

    def tags(self, query: dict[str, list[str]]) -> tuple[HTTPStatus, dict[str, Any]]:
        code = query.get("enterprise", [None])[0]
        if not code:
            return HTTPStatus.BAD_REQUEST, {"error": "query parameter 'enterprise' is required"}
        ent = self.tracker.state.enterprises.get(code)
        if ent is None:
            return HTTPStatus.NOT_FOUND, {"error": f"enterprise {code} is not in the inventory"}
        source = query.get("source", [None])[0]
        if source is not None and source not in ent.sources:
            return HTTPStatus.NOT_FOUND, {"error": f"enterprise {code} has no data source {source!r}"}
        flag = query.get("flag", [None])[0]
        if flag is not None and flag not in FLAGS:
            return HTTPStatus.BAD_REQUEST, {"error": f"flag {flag!r} is not one of {', '.join(FLAGS)}"}
        names = [source] if source else list(ent.sources)
        at = self.tracker.evaluation.at
        with self.tracker.lock:
            copies = [(name, self._copy_tags(code, name)) for name in names]
        tags = [t for name, copy in copies for t in self._tag_views(code, name, copy, at, flag)]
        return HTTPStatus.OK, {"evaluated_at": at, "tags": tags}


def healthz(tracker: Tracker) -> tuple[HTTPStatus, bytes]:
    """200 and `ok` while every started loop is healthy; 503 and `unhealthy: <loops>` otherwise.
    Then one line per loop: its name, ok or why not, and how long ago it last succeeded."""
    now = tracker.clock()
    statuses = tracker.health.status()
    bad = [s.name for s in statuses if not s.healthy]
    lines = [f"unhealthy: {', '.join(bad)}" if bad else "ok"]
    for s in statuses:
        ago = f"{now - s.last_success:.1f} s ago" if math.isfinite(s.last_success) else "never"
        lines.append(f"{s.name}: {s.detail} (last success {ago})")
    status = HTTPStatus.SERVICE_UNAVAILABLE if bad else HTTPStatus.OK
    return status, ("\n".join(lines) + "\n").encode()


class _DeadlineReader(io.RawIOBase):
    """A connection's socket, read against one deadline for the whole request: a per-read
    timeout alone lets a client trickling one byte at a time hold the handler thread forever."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buf)


def make_handler(api: TrackerApi, registry: CollectorRegistry, token: bytes | None,
                 timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "hazmon-tracker"

        def setup(self) -> None:
            super().setup()
            self.rfile = io.BufferedReader(_DeadlineReader(self.connection, time.monotonic() + timeout))

        def do_GET(self) -> None:
            self.connection.settimeout(timeout)  # writing the answer: each send must progress
            url = urlsplit(self.path)
            path = url.path.rstrip("/")
            if path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(*healthz(api.tracker), "text/plain; charset=utf-8")
            elif path == API or path.startswith(f"{API}/"):
                if self._authorized():
                    self._api(path, url.query)
                else:
                    self._json(HTTPStatus.UNAUTHORIZED, {"error": "the API requires Authorization: Bearer <token>"},
                               {"WWW-Authenticate": 'Bearer realm="hazmon-tracker"'})
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such resource: {url.path}"})

        def _authorized(self) -> bool:
            scheme, _, given = self.headers.get("Authorization", "").partition(" ")
            if token is None or scheme.lower() != "bearer":
                return False
            return hmac.compare_digest(given.strip().encode("latin-1", "replace"), token)

        def _api(self, path: str, query: str) -> None:
            if path == f"{API}/enterprises":
                self._json(HTTPStatus.OK, api.enterprises())
            elif path.startswith(f"{API}/enterprises/"):
                body = api.enterprise(path.removeprefix(f"{API}/enterprises/"))
                if body is None:
                    self._json(HTTPStatus.NOT_FOUND, {"error": "enterprise is not in the inventory"})
                else:
                    self._json(HTTPStatus.OK, body)
            elif path == f"{API}/tags":
                self._json(*api.tags(parse_qs(query)))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such resource: {path}"})

        def _json(self, status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
            self._send(status, data, "application/json; charset=utf-8", headers)

        def _send(self, status: HTTPStatus, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the journal

    return Handler


class HttpServer:
    def __init__(self, tracker: Tracker, host: str, port: int, token: str | None = None) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TrackerCollector(tracker))
        handler = make_handler(TrackerApi(tracker), registry, token.encode() if token else None,
                               tracker.settings.http_request_timeout_seconds)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="tracker-http", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
