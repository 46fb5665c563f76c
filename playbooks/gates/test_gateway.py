"""Gates of every gateway and AI box (roles gateway_base and node_exporter)."""

from __future__ import annotations

import json

ROLES = ("access_gateway", "daq_gateway", "ai_box")
NODE_EXPORTER_PORT = 9100


def test_host_name_is_the_inventory_name(box, target):
    assert box.check_output("hostname") == target.name, "the host name is not the inventory's"


def test_clock_source_is_the_platform_ntp(box, platform, wait):
    assert box.service("chrony").is_running, "chronyd is not running"
    servers = set(platform["ntp"])

    def answering() -> None:
        sources = box.check_output("chronyc -n -c sources")
        # CSV: mode, state, address, stratum, poll, reach (octal register of the last 8 polls), ...
        rows = [line.split(",") for line in sources.splitlines() if line]
        heard = {r[2] for r in rows if len(r) > 5 and r[2] in servers and int(r[5], 8) != 0}
        assert heard, f"chrony has not heard from the platform's NTP servers {sorted(servers)}: {sources!r}"

    wait(answering, "NTP")


def test_firewall_denies_by_default(box):
    assert box.service("nftables").is_enabled, "nftables is not enabled (the rules would not survive a reboot)"
    ruleset = json.loads(box.check_output("nft -j list ruleset"))["nftables"]
    chains = [c["chain"] for c in ruleset if "chain" in c]
    inbound = [c for c in chains if c.get("hook") == "input"]
    assert inbound, "no input chain is loaded"
    assert all(c.get("policy") == "drop" for c in inbound), f"an input chain does not drop by default: {inbound}"


def test_sshd_is_hardened(box):
    effective = dict(
        line.split(" ", 1) for line in box.check_output("sshd -T").splitlines() if " " in line
    )
    assert effective.get("passwordauthentication") == "no", "sshd still accepts passwords"
    assert effective.get("permitrootlogin") in ("no", "prohibit-password", "without-password"), (
        f"sshd lets root log in with a password (permitrootlogin {effective.get('permitrootlogin')})"
    )


def test_journal_is_persistent(box):
    assert box.file("/var/log/journal").is_directory, "/var/log/journal is missing: the journal is volatile"


def test_node_exporter_serves_metrics(box, target, wait):
    svc = box.service("prometheus-node-exporter")
    assert svc.is_running and svc.is_enabled, "prometheus-node-exporter is not running and enabled"

    def serves() -> None:
        out = box.check_output(f"python3 -c \"import urllib.request as u; print(u.urlopen("
                               f"'http://{target.address}:{NODE_EXPORTER_PORT}/metrics', timeout=5).read()"
                               f".decode().count('node_textfile_scrape_error'))\"")
        assert int(out) > 0, "node_exporter's textfile collector is not enabled"

    wait(serves, "node_exporter")
