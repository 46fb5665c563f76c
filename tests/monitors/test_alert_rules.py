"""The alert rules pass promtool's checks and its rule unit tests (real promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[2] / "monitors" / "prometheus" / "rules"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool comes with Debian's prometheus package (scripts/bootstrap installs it)"
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False, cwd=RULES)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def test_rules_are_valid() -> None:
    files = sorted(str(p) for p in RULES.glob("*.rules.yml"))
    assert files
    result = _promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_when_they_should() -> None:
    tests = sorted(p.name for p in RULES.glob("*.test.yml"))
    assert {"hazmon-feeds.test.yml", "hazmon-tracker.test.yml", "hazmon-collector.test.yml"} <= set(tests)
    result = _promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_that_fires_it() -> None:
    """Each rule file's alerts, each named by a firing expectation of some promtool test."""
    alerts = {r["alert"] for f in RULES.glob("*.rules.yml") for g in _load(f)["groups"]
              for r in g["rules"] if "alert" in r}
    fired = {t["alertname"] for f in RULES.glob("*.test.yml") for case in _load(f)["tests"]
             for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert alerts and alerts <= fired, f"no firing test for {sorted(alerts - fired)}"
