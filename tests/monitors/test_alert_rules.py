"""The alert rules pass promtool's checks and its rule unit tests (real promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "monitors" / "prometheus" / "rules"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool comes with Debian's prometheus package (scripts/bootstrap installs it)"
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False, cwd=RULES)


def test_rules_are_valid() -> None:
    files = sorted(str(p) for p in RULES.glob("*.rules.yml"))
    assert files
    result = _promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_when_they_should() -> None:
    result = _promtool("test", "rules", "hazmon-feeds.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_collector_alerts_fire_when_they_should() -> None:
    result = _promtool("test", "rules", "hazmon-collector.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
