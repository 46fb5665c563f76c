"""Gates of the data-acquisition gateway (role collector) and of its data at the province (D1, D7)."""

from __future__ import annotations

import json
import urllib.request

import yaml

from hazmon.collector.render import render_config

ROLES = ("daq_gateway",)
CONFIG = "/etc/hazmon-collector/config.yml"
UNIT = "hazmon-collector"


def test_collector_runs(box):
    svc = box.service(UNIT)
    assert svc.is_running, f"{UNIT} is not running"
    assert svc.is_enabled, f"{UNIT} is not enabled (it would not come back after a reboot)"


def test_config_is_what_the_inventory_renders(box, inventory, enterprise):
    deployed = box.file(CONFIG)
    assert deployed.exists, f"{CONFIG} is missing"
    have = yaml.safe_load(deployed.content_string)
    # What the inventory defines must be there as rendered; where files and ports go on the host
    # (credential paths, metrics address) is the role's business, checked by the other gates.
    want = render_config(inventory, enterprise).model_dump(mode="json", exclude_none=True, by_alias=True)
    for key in ("gateway", "city"):
        assert have.get(key) == want[key], f"{CONFIG}: {key} differs from what the inventory renders"
    assert _sources(have) == _sources(want), f"{CONFIG}: the data sources differ from what the inventory renders"
    for key in ("host", "port", "username", "tls"):
        assert have["mqtt"].get(key) == want["mqtt"][key], f"{CONFIG}: mqtt.{key} differs from the inventory"


def _sources(config: dict) -> list[dict]:
    """The sources without where their password files sit (the role hands them over as credentials)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "password_file"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(config.get("sources") or [])


def test_secrets_are_private(box):
    secrets = box.file("/etc/hazmon-collector/secrets")
    assert secrets.is_directory, "the collector's secrets folder is missing"
    assert secrets.mode & 0o077 == 0, f"the secrets folder is open to others (mode {secrets.mode:o})"
    for name in box.check_output("ls -1 /etc/hazmon-collector/secrets").split():
        f = box.file(f"/etc/hazmon-collector/secrets/{name}")
        assert f.mode & 0o077 == 0, f"secret {name} is readable by others (mode {f.mode:o})"


def test_every_expected_tag_reaches_the_tracker(platform, enterprise, wait, tracker_token):
    tracker = platform["tracker"]
    url = f"http://{tracker['host']}:{tracker['port']}/api/v1/enterprises/{enterprise.code}"
    expected = {s.name: len(s.tags) for s in enterprise.data_sources}

    request = urllib.request.Request(url)
    if tracker_token:
        request.add_header("Authorization", f"Bearer {tracker_token}")

    def arrived() -> None:
        with urllib.request.urlopen(request, timeout=5) as resp:
            data = json.load(resp)
        seen = {s["source"]: s for s in data["sources"]}
        late = {name: f"{seen[name]['fresh_tags'] if name in seen else 0}/{n} fresh"
                for name, n in expected.items()
                if name not in seen or seen[name]["stalled"] or seen[name]["fresh_tags"] < n}
        assert not late, f"the tracker at {tracker['host']} does not have every tag fresh: {late}"

    wait(arrived, "tracker")
