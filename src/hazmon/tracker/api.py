"""One HTTP port: /metrics for Prometheus, /api/v1/... JSON for people and the nightly report.

GET /api/v1/enterprises                 every enterprise with its sources' evaluated figures
GET /api/v1/enterprises/<code>          one enterprise, with every tag of every source
GET /api/v1/tags?enterprise=<code>[&source=<name>][&flag=<flag>]
                                        tags of one enterprise (required: responses stay bounded)
GET /healthz                            200 while the tracker runs
Per-tag flags use the time of the last evaluation, so the API agrees with /metrics.
"""

from __future__ import annotations

import json
import math
import threading
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
    """The JSON views, apart from HTTP so that they can be tested and reused."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def _enterprise(self, ent: ExpectedEnterprise, with_tags: bool) -> dict[str, Any]:
        t, ev = self.tracker, self.tracker.evaluation
        sources = []
        with t.lock:
            for name in ent.sources:
                st = t.state.sources[(ent.code, name)]
                item = {"source": name} | source_summary(
                    ev.sources.get((ent.code, name)), st.last_sample_ts, st.last_receive_ts)
                if with_tags:
                    item["tags"] = self._tags_of(ent.code, name, None)
                sources.append(item)
        return {"code": ent.code, "name": ent.name, "city": ent.city, "state": ent.state,
                "annotations": list(ent.annotations), "expected": ent.expected, "sources": sources}

    def _tags_of(self, code: str, source: str, flag: str | None) -> list[dict[str, Any]]:
        """Caller holds the tracker lock."""
        t = self.tracker
        st = t.state.sources[(code, source)]
        now, th = t.evaluation.at, t.settings.thresholds
        out = []
        for tcode, spec in st.spec.tags.items():
            tag = st.tags.get(tcode)
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
        with self.tracker.lock:
            tags = [t for name in names for t in self._tags_of(code, name, flag)]
        return HTTPStatus.OK, {"evaluated_at": self.tracker.evaluation.at, "tags": tags}


def make_handler(api: TrackerApi, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "hazmon-tracker"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path = url.path.rstrip("/")
            if path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            elif path == f"{API}/enterprises":
                self._json(HTTPStatus.OK, api.enterprises())
            elif path.startswith(f"{API}/enterprises/"):
                body = api.enterprise(path.removeprefix(f"{API}/enterprises/"))
                if body is None:
                    self._json(HTTPStatus.NOT_FOUND, {"error": "enterprise is not in the inventory"})
                else:
                    self._json(HTTPStatus.OK, body)
            elif path == f"{API}/tags":
                self._json(*api.tags(parse_qs(url.query)))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such resource: {url.path}"})

        def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
            self._send(status, data, "application/json; charset=utf-8")

        def _send(self, status: HTTPStatus, data: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the journal

    return Handler


class HttpServer:
    def __init__(self, tracker: Tracker, host: str, port: int) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TrackerCollector(tracker))
        self.server = ThreadingHTTPServer((host, port), make_handler(TrackerApi(tracker), registry))
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
