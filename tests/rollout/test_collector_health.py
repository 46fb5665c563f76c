"""The collector role's last check (hazmon.rollout.health): connected to the broker and queueing
within a bound, read from the collector's /metrics over real HTTP (a loopback server playing the
collector: what it answers is scripted per scrape). tests/e2e/test_gateway_roles.py fails the role on
a lab gateway whose broker password is wrong."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hazmon.rollout.health import parse, wait_healthy


def metrics(connected: int, queued: float, refusals: float = 0, dcs_up: int = 1) -> str:
    return (
        "# TYPE hazmon_collector_uplink_connected gauge\n"
        f"hazmon_collector_uplink_connected {connected}\n"
        "# TYPE hazmon_collector_samples_queued counter\n"
        f"hazmon_collector_samples_queued_total {queued}\n"
        "# TYPE hazmon_collector_uplink_refusals counter\n"
        f"hazmon_collector_uplink_refusals_total {refusals}\n"
        "# TYPE hazmon_collector_source_up gauge\n"
        f'hazmon_collector_source_up{{protocol="modbus_tcp",source="dcs"}} {dcs_up}\n'
    )


class Collector:
    """Answers the n-th scrape with script[n] (the last one repeats); None: HTTP 500."""

    def __init__(self) -> None:
        self.script: list[str | None] = []
        self.scrapes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.script[min(outer.scrapes, len(outer.script) - 1)]
                outer.scrapes += 1
                if body is None:
                    self.send_error(500)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    thread = threading.Thread(target=c.server.serve_forever, daemon=True)
    thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


def test_healthy_once_connected_and_the_queue_takes_samples(collector: Collector):
    # Starting: not connected yet, then connected with nothing read, then samples arriving (one of
    # two sources down: the queue must be seen taking samples).
    collector.script = [metrics(0, 0, dcs_up=0), metrics(1, 0, dcs_up=0), metrics(1, 8, dcs_up=0)]
    health = wait_healthy(collector.url, timeout=10, interval=0.05)
    assert health.ok, health.msg
    assert collector.scrapes == 3 and health.msg.startswith("connected to the broker and queueing (8 samples")


def test_a_collector_already_polling_every_source_passes_at_the_first_scrape(collector: Collector):
    collector.script = [metrics(1, 120)]
    health = wait_healthy(collector.url, timeout=10, interval=5)
    assert health.ok and collector.scrapes == 1 and health.seconds < 5, health
    assert health.msg == "connected to the broker, every source answering, 120 samples queued"


def test_a_refused_broker_login_fails_with_the_refusals(collector: Collector):
    collector.script = [metrics(0, 5, refusals=1), metrics(0, 9, refusals=3)]
    health = wait_healthy(collector.url, timeout=0.5, interval=0.05)
    assert not health.ok and health.seconds >= 0.5
    assert "not connected to the broker and queueing 0.5 s after its start" in health.msg
    assert "the broker refused 3 connection(s) (bad credentials or not authorised" in health.msg
    assert health.msg.endswith("sources: dcs up")


def test_connected_but_queueing_nothing_fails(collector: Collector):
    collector.script = [metrics(1, 40, dcs_up=0)]
    health = wait_healthy(collector.url, timeout=0.4, interval=0.05)
    assert not health.ok
    assert "connected, but no sample queued (hazmon_collector_samples_queued_total stays at 40)" in health.msg
    assert health.msg.endswith("sources: dcs down")


def test_a_crash_loop_between_scrapes_is_not_taken_for_progress(collector: Collector):
    """Counters start from 0 after a restart: connected, restarted (no answer), connected again with
    fewer samples than before is no proof; only a rise within one process is."""
    collector.script = [metrics(1, 30, dcs_up=0), None, metrics(1, 2, dcs_up=0), metrics(1, 2, dcs_up=0)]
    health = wait_healthy(collector.url, timeout=0.5, interval=0.05)
    assert not health.ok and "stays at 2" in health.msg


def test_no_answer_at_all_says_the_collector_is_not_running():
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/metrics"
        health = wait_healthy(url, timeout=0.3, interval=0.05)
    assert not health.ok
    assert f"its metrics ({url}) never answered (" in health.msg and "crash loop" in health.msg


def test_something_else_answering_is_not_a_collector():
    with pytest.raises(ValueError, match="not a hazmon collector's metrics"):
        parse("# TYPE up gauge\nup 1\n")
