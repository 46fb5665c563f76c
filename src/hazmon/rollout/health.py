"""Is a collector connected to the broker and queueing? The collector role's last check, on the
control node (the action plugin hazmon_collector_health), from the collector's own /metrics.

`systemctl start` succeeds for a collector that exits a second later (a wrong broker password, a
source it cannot open, a crash), and systemd restarts it for ever: the role would pass a gateway
that sends nothing. So the role waits, within a bound, until the collector's metrics show it
connected to the broker (`hazmon_collector_uplink_connected` 1) and its durable queue taking
samples: `hazmon_collector_samples_queued_total` rising between two scrapes, or, at once, samples
queued and every source's last poll a success (`hazmon_collector_source_up` 1; a source polled once
a minute would otherwise hold the check for a minute). The metrics are read where the province's
Prometheus reads them (the gateway's management address), so the check also proves the firewall
lets the scrape in.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from hazmon.collector.metrics import P

CONNECTED = P + "uplink_connected"
QUEUED = P + "samples_queued_total"
REFUSALS = P + "uplink_refusals_total"
SOURCE_UP = P + "source_up"
SCRAPE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Scrape:
    connected: bool
    queued: float
    refusals: float
    sources_up: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    ok: bool
    msg: str
    seconds: float


def parse(text: str) -> Scrape:
    values: dict[str, float] = {}
    sources: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == SOURCE_UP:
                sources[s.labels.get("source", "?")] = s.value
            elif not s.labels:
                values[s.name] = s.value
    if CONNECTED not in values or QUEUED not in values:
        raise ValueError(f"not a hazmon collector's metrics (no {CONNECTED} or {QUEUED})")
    return Scrape(values[CONNECTED] == 1, values[QUEUED], values.get(REFUSALS, 0.0), sources)


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as resp:  # the gateway's management address
        return parse(resp.read().decode("utf-8", errors="replace"))


def wait_healthy(url: str, timeout: float, interval: float = 0.5,
                 fetch: Callable[[str], Scrape] = scrape,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Health:
    """Poll until two scrapes, both connected, show the queue taking samples; or say why not."""
    start = clock()
    deadline = start + timeout
    base: Scrape | None = None  # the last connected scrape: the next must have queued more
    last: Scrape | None = None
    error = ""
    while True:
        try:
            now = fetch(url)
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            error, base = _why(exc), None
        else:
            last, error = now, ""
            if now.connected and now.queued > 0 and now.sources_up and all(v == 1 for v in now.sources_up.values()):
                return Health(True, f"connected to the broker, every source answering, {now.queued:g} samples "
                                    "queued", clock() - start)
            if now.connected and base is not None and now.queued > base.queued:
                return Health(True, f"connected to the broker and queueing ({now.queued - base.queued:g} samples "
                                    f"queued in the last {interval:g} s)", clock() - start)
            # A restart between two scrapes starts the counters from 0 again: compare with this one.
            base = now if now.connected else None
        if clock() >= deadline:
            return Health(False, _failure(url, timeout, last, error), clock() - start)
        sleep(interval)


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc)


def _failure(url: str, timeout: float, last: Scrape | None, error: str) -> str:
    head = f"hazmon-collector is not connected to the broker and queueing {timeout:g} s after its start"
    if last is None:
        return (f"{head}: its metrics ({url}) never answered ({error}): the collector is not running "
                "(a crash loop?), or its metrics port is not reachable from the management network")
    sources = ", ".join(f"{name} {'up' if up == 1 else 'down'}" for name, up in sorted(last.sources_up.items()))
    if error:
        state = f"its metrics stopped answering ({error}; a crash loop?)"
    elif not last.connected:
        state = (f"{CONNECTED} is 0: the broker refused {last.refusals:g} connection(s) (bad credentials or not "
                 "authorised: the gateway's broker account and its password in the vault)" if last.refusals
                 else f"{CONNECTED} is 0: no connection to the broker (unreachable: the line, the firewall?)")
    else:
        state = f"connected, but no sample queued ({QUEUED} stays at {last.queued:g}): are its sources answering?"
    return f"{head}: {state}; sources: {sources or 'none'}"
