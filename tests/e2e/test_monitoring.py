"""The lab's Prometheus and Alertmanager run with the project's own alert rules."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:  # a lab address (198.18.0.0/15)
        return json.load(resp)


def test_prometheus_loads_the_monitors_rules(lab) -> None:
    prom = lab.inventory.province.platform.prometheus
    rules = _get(f"http://{prom.host}:{prom.port}/api/v1/rules")["data"]["groups"]
    feeds = next(g for g in rules if g["name"] == "hazmon-feeds")
    names = {r["name"] for r in feeds["rules"]}
    assert {"HazmonSourceStalled", "HazmonCollectorDataDropped"} <= names
    assert all(r["health"] == "ok" for r in feeds["rules"])


def test_prometheus_sees_alertmanager(lab) -> None:
    prom = lab.inventory.province.platform.prometheus
    am = lab.inventory.province.platform.alertmanager
    active = _get(f"http://{prom.host}:{prom.port}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert any(f"{am.host}:{am.port}" in a["url"] for a in active)
    assert _get(f"http://{am.host}:{am.port}/api/v2/status")["cluster"]["status"] in ("ready", "disabled")
