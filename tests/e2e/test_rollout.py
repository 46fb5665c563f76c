"""The rollout on the lab: `hazmon rollout` for real, from bare hosts.

One sequence, in file order, on batch 1 of inventories/lab:
0. every gateway and AI box of the batch is made bare, the tracker runs at the province, and
   one enterprise's dedicated line is cut; the canary (the first wave: labe0001) fails during its
   rollout (a file where its collector's config folder goes), and the run stops there: the
   enterprises of the later wave are not touched;
1. the canary repaired, the next run rolls out every enterprise that passes preflight, each wave
   passing its verify gates before the next starts; it records the cut one as failed (gate and
   reason) and refuses labe0006 for the notice rule it breaks (N2);
2. what was rolled out works: every expected tag at the tracker, the NVRs registered at the
   platform's registrar, the switch ports reserved (N6);
3. the line comes back; a second run continues where the first stopped and completes it;
4. a full re-run changes nothing on any host (idempotence); a re-imaged gateway, rolled out
   again, is heard again by the tracker that knew its old queue;
5. check mode with diff is clean, then reports a hand-edited file as drift;
6. a -vvv run shows no secret;
7. decommission takes an enterprise off again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hazmon.inventory.secrets import TRACKER_API_CREDENTIAL, ensure_lab_vault
from hazmon.lab import datapath, faults
from hazmon.lab.devices import control_path
from hazmon.lab.lab import Lab
from hazmon.lab.sim.common import control
from hazmon.rollout import ledger

pytestmark = pytest.mark.e2e

BATCH = 1
CUT = "labe0005"  # the fireworks plant: its dedicated line is cut during the first run
NOT_READY = "labe0006"  # line measured 8 Mbps: N2 blocker in the inventory
DECOMMISSIONED = "labe0004"
REIMAGED = "labe0002"  # its data-acquisition gateway is re-imaged after the rollout
CANARY = "labe0001"  # the first wave (slugs sorted); its rollout fails in the first run
# Where the collector role puts its config folder: a file there fails the role (and nothing before it).
CANARY_BREAK = "/etc/hazmon-collector"
BANNER = "PLAY [Rollout | enterprise devices, wave by wave]"
HAZMON = str(Path(sys.executable).parent / "hazmon")


@dataclass
class Rollout:
    lab: Lab
    ledger: Path
    runs: list[dict] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def run(self, *args: str, expect: int | None = None) -> dict:
        argv = [HAZMON, "rollout", str(self.lab.inventory_root), "--batch", str(BATCH), "--json",
                "--ledger", str(self.ledger), *args]
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
        self.seconds.append(time.monotonic() - t0)
        self.logs.append(proc.stderr)
        # Ansible's own output, kept beside the ledger for whoever reads a failure.
        (self.ledger.parent / f"run-{len(self.logs)}.log").write_text(proc.stderr)
        assert proc.stdout.strip(), f"no JSON summary (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
        result = json.loads(proc.stdout)
        result["rc"] = proc.returncode
        self.runs.append(result)
        if expect is not None:
            assert proc.returncode == expect, f"rc {proc.returncode}:\n{proc.stderr[-6000:]}"
        return result

    def records(self) -> list[ledger.Record]:
        return list(ledger.read(self.ledger))


def _by_slug(result: dict) -> dict[str, dict]:
    return {p["slug"]: p for p in result["enterprises"].values()}


def _batch_slugs(lab: Lab) -> list[str]:
    return sorted(e.slug for e in lab.inventory.enterprises if e.batch == BATCH and e.code in lab.plan.sites)


def _verified(result: dict) -> set[str]:
    return {p["enterprise"] for p in result["enterprises"].values() if p["stage"] == "verified"}


def _waves(log: str) -> list[str]:
    """The output of each wave of the rollout play (up to the next play or the recap)."""
    return [w.split("\nPLAY ")[0] for w in log.split(BANNER)[1:]]


def _hosts(wave: str) -> set[str]:
    return {line.split("[", 1)[1].split("]", 1)[0].split(" ")[0] for line in wave.splitlines()
            if line.startswith(("ok: [", "changed: [", "fatal: ["))}


@pytest.fixture(scope="module")
def rollout(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    work = tmp_path_factory.mktemp("rollout")
    vault = datapath.ensure_lab_vault(lab.inventory)
    hosts = [h.name for h in lab.plan.hosts.values()
             if h.enterprise and lab.plan.sites[h.enterprise].enterprise.batch == BATCH]
    lab.reset_hosts(hosts)  # bare: everything the hosts wrote is gone
    tracker = datapath.tracker_setup(lab, work / "tracker", vault, client_id="hazmon-tracker-rollout-test")
    proc = datapath.start_tracker(tracker, work / "tracker.log")
    cut = False
    try:
        datapath.wait_tracker(tracker, proc)
        # Its own tracker, not one some earlier run left on the address.
        assert proc.poll() is None, (work / "tracker.log").read_text()[-2000:]
        faults.link_down(lab, CUT)
        cut = True
        yield Rollout(lab, work / "ledger.jsonl")
    finally:
        if cut:
            faults.link_up(lab, CUT)
        datapath.terminate(proc)
        datapath.forget_session(lab, vault, "hazmon-tracker-rollout-test")


def test_a_failed_canary_stops_the_run(rollout: Rollout, ssh):
    lab = rollout.lab
    assert ssh(f"{CANARY}-daq", f"touch {CANARY_BREAK}").returncode == 0
    try:
        result = rollout.run("--waves", "1,100%", expect=1)
    finally:
        ssh(f"{CANARY}-daq", f"rm -f {CANARY_BREAK}")
    ents = _by_slug(result)
    assert ents[CANARY]["failed_gate"] == "rollout" and ents[CANARY]["failed_host"] == f"{CANARY}-daq", ents[CANARY]
    assert result["stopped"] and "the first wave is the canary" in result["stopped"], result["stopped"]
    assert f"{CANARY}-daq" in result["stopped"] and "The later waves are not started" in result["stopped"]
    # Preflight let the others through; their wave never started: nothing of the rollout on their boxes.
    later = set(_batch_slugs(lab)) - {CANARY, CUT, NOT_READY}
    assert later and all(ents[s]["stage"] == "ready" and not ents[s]["failed_gate"] for s in later), ents
    assert set(result["not_reached"]) == {ents[s]["enterprise"] for s in later}
    waves = _waves(rollout.logs[-1])
    assert len(waves) == 1 and {h.split("-")[0] for h in _hosts(waves[0])} == {CANARY}, rollout.logs[-1][-4000:]
    for slug in later:
        assert ssh(f"{slug}-daq", "test -e /opt/hazmon-collector; echo $?").stdout.split() == ["1"], slug


def test_the_next_run_rolls_out_wave_by_wave_each_verified_before_the_next(rollout: Rollout):
    result = rollout.run("--waves", "1,100%", expect=1)  # a canary wave, then the rest; one failed
    ents = _by_slug(result)
    cut = ents[CUT]
    assert cut["failed_gate"] == "preflight", cut
    assert cut["failed_host"].startswith(CUT) and cut["reason"], cut
    refused = ents[NOT_READY]
    assert refused["failed_gate"] == "preflight" and "N2" in refused["reason"], refused
    others = set(_batch_slugs(rollout.lab)) - {CUT, NOT_READY}
    assert others and all(ents[s]["stage"] == "verified" and not ents[s]["failed_gate"] for s in others), ents
    assert not result["stopped"] and not result["not_reached"]
    # The ledger has the gate and the reason, per host, for the cut enterprise.
    recs = [r for r in rollout.records() if r.slug == CUT and r.status in ("failed", "unreachable")]
    assert any(r.gate == "preflight" and r.reason for r in recs)
    # Preflight cut the rollout play's waves in the same run: a canary of one whole enterprise, then
    # the others; none of the refused ones' hosts in any wave.
    assert len(result["serial"]) == 2, result["serial"]
    waves = _waves(rollout.logs[-1])
    assert len(waves) == 2, rollout.logs[-1][-4000:]
    hosts = [_hosts(w) for w in waves]
    assert len({h.split("-")[0] for h in hosts[0]}) == 1 and len(hosts[0]) == result["serial"][0], hosts[0]
    assert not any(h.startswith((CUT, NOT_READY)) for w in hosts for h in w), hosts
    # Each wave ran its verify gates (data at the province tracker included) before the next began,
    # and the ledger has each wave's verify records before any record of the next wave's hosts.
    for wave in waves:
        assert "TASK [Verify | run the gates]" in wave and "TASK [Verify | this host's gates passed]" in wave
    run = [r for r in rollout.records() if r.run == result["run"] and r.gate in ("rollout", "verify")]
    first = {r.host for r in run if r.slug == CANARY}
    last_verify_of_wave_1 = max(i for i, r in enumerate(run) if r.host in first and r.gate == "verify")
    first_of_wave_2 = min(i for i, r in enumerate(run) if r.host not in first)
    assert last_verify_of_wave_1 < first_of_wave_2
    assert {r.host for r in run if r.gate == "verify" and r.status == "passed"} >= hosts[0] | hosts[1]


def _api_token(lab) -> str:
    """The tracker's JSON API answers only with the vault's bearer token."""
    return ensure_lab_vault(lab.inventory)[TRACKER_API_CREDENTIAL]


def test_every_rolled_out_enterprise_delivers_every_expected_tag(rollout: Rollout):
    lab = rollout.lab
    tracker = datapath.tracker_url(lab)
    done = _verified(rollout.runs[1])
    assert done
    for ent in lab.inventory.enterprises:
        if ent.code not in done or not ent.data_sources:
            continue
        data = datapath.tracker_json(tracker, f"/api/v1/enterprises/{ent.code}", _api_token(lab))
        for src in ent.data_sources:
            seen = next(s for s in data["sources"] if s["source"] == src.name)
            assert seen["expected_tags"] == len(src.tags) and seen["fresh_tags"] == len(src.tags), (ent.slug, seen)


def test_the_nvrs_are_registered_at_the_platform(rollout: Rollout):
    lab = rollout.lab
    sip = lab.inventory.province.platform.sip
    with urllib.request.urlopen(sip.status_url, timeout=5) as resp:
        devices = json.load(resp)["devices"]
    done = _verified(rollout.runs[1])
    for ent in lab.inventory.enterprises:
        for nvr in ent.devices.nvrs if ent.code in done else []:
            dev = devices.get(nvr.device_id)
            assert dev and dev["registered"] and dev["online"], (ent.slug, nvr.name, dev)
            ids = {c["device_id"] for c in dev["channels"]}
            assert {c.channel_id for c in ent.cameras if c.nvr == nvr.name} <= ids


def test_the_switches_show_the_reserved_ports(rollout: Rollout):
    lab = rollout.lab
    done = _verified(rollout.runs[1])
    checked = 0
    for ent in lab.inventory.enterprises:
        sw = ent.devices.switch
        if ent.code not in done or sw is None:
            continue
        state = control(control_path(lab.run_dir, "switch", ent.slug, sw.name), {"cmd": "state"})
        reserved = {p["description"].split()[0]: p for p in state["ports"].values()
                    if p["description"].startswith("hazmon:")}
        assert set(reserved) == {"hazmon:ai_box", "hazmon:nvr"}, (ent.slug, state["ports"])  # N6
        # Access mode: set explicitly, or the factory default (None), which is access on both vendors.
        assert all(p["link_type"] in (None, "access") and not p["shutdown"] for p in reserved.values()), reserved
        if sw.vlan is not None:
            assert {p["vlan"] for p in reserved.values()} == {sw.vlan}, reserved
        assert state["saved_at"], "the switch's configuration was not saved"
        checked += 1
    assert checked


def test_a_second_run_after_the_line_returns_completes_the_cut_one(rollout: Rollout):
    faults.link_up(rollout.lab, CUT)
    # With Ansible's own linear strategy: the fallback for an ansible-core that Mitogen (ansible.cfg's
    # strategy, used by every other run here) does not follow yet takes a site from bare to verified.
    result = rollout.run("--plain-strategy")
    ents = _by_slug(result)
    assert ents[CUT]["stage"] == "verified" and not ents[CUT]["failed_gate"], ents[CUT]
    # It continued where the first stopped: the verified ones were left alone.
    first_done = _verified(rollout.runs[1])
    assert set(result["skipped_done"]) == first_done
    assert len(result["serial"]) == 1  # one enterprise left: one wave holding all its hosts
    assert result["rc"] == 0, rollout.logs[-1][-4000:]


def test_a_full_rerun_changes_nothing(rollout: Rollout):
    result = rollout.run("--all", "--waves", "100%", expect=0)
    changed = {h: n for h, n in result["changed"].items() if n}
    assert not changed, f"not idempotent: {changed}\n{rollout.logs[-1][-6000:]}"
    assert len(result["changed"]) >= 3 * (len(_batch_slugs(rollout.lab)) - 1)


def test_a_reimaged_gateway_is_heard_again(rollout: Rollout):
    """A data-acquisition gateway re-imaged (its disk wiped: its collector's queue numbers batches
    from 1 again) and rolled out again. The tracker has seen that gateway's earlier numbers; it must
    take the new queue's batches as new data (the queue epoch on the wire), so that every tag is
    fresh again, instead of dropping them as copies until the numbers pass the old ones."""
    lab = rollout.lab
    ent = next(e for e in lab.inventory.enterprises if e.slug == REIMAGED)
    tracker = datapath.tracker_url(lab)

    def epoch_changes() -> float:
        return sum(v for k, v in datapath.tracker_metrics(tracker).items()
                   if k.startswith("hazmon_tracker_gateway_epoch_changes_total") and f'"{ent.code}"' in k)

    before = epoch_changes()
    lab.reset_hosts([f"{REIMAGED}-daq"])
    result = rollout.run("--all", "--enterprise", REIMAGED, "--waves", "100%", expect=0)
    assert _by_slug(result)[REIMAGED]["stage"] == "verified", rollout.logs[-1][-4000:]
    assert epoch_changes() == before + 1
    data = datapath.tracker_json(tracker, f"/api/v1/enterprises/{ent.code}", _api_token(lab))
    for src in ent.data_sources:
        seen = next(s for s in data["sources"] if s["source"] == src.name)
        assert seen["fresh_tags"] == len(src.tags), seen


def test_check_mode_is_clean_then_reports_a_hand_edit(rollout: Rollout, ssh):
    clean = rollout.run("--check", expect=0)
    assert not {h: n for h, n in clean["changed"].items() if n}, rollout.logs[-1][-6000:]
    host = "labe0001-daq"
    path = "/etc/hazmon-collector/config.yml"
    ssh(host, f"sed -i 's/keepalive: 30/keepalive: 31/' {path}")
    try:
        drift = rollout.run("--check")
        assert drift["rc"] == 1
        assert {h for h, n in drift["changed"].items() if n} == {host}, drift["changed"]
        log = rollout.logs[-1]
        assert "keepalive: 31" in log and "keepalive: 30" in log  # the diff shows the edit
        # Nothing was applied in check mode: the edit is still there.
        assert "keepalive: 31" in ssh(host, f"cat {path}").stdout
    finally:
        ssh(host, f"sed -i 's/keepalive: 31/keepalive: 30/' {path}")


def test_no_secret_in_a_verbose_run(rollout: Rollout, vault: dict[str, str]):
    slug = "labe0002"  # OPC UA credentials, an MQTT account, an NVR, an H3C switch: every kind of secret
    rollout.run("--all", "--enterprise", slug, "-vvv")
    out = rollout.logs[-1]
    assert len(out) > 10_000, "the -vvv output is suspiciously short"
    leaked = [name for name, value in vault.items() if len(value) >= 8 and value in out]
    assert not leaked, f"secrets in the -vvv output: {leaked}"


def test_decommission_takes_an_enterprise_off(rollout: Rollout, ssh):
    proc = subprocess.run([HAZMON, "rollout", str(rollout.lab.inventory_root), "--ledger", str(rollout.ledger),
                           "--decommission", DECOMMISSIONED], capture_output=True, text=True, check=False,
                          timeout=600, env={**os.environ})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = ssh(f"{DECOMMISSIONED}-daq", "systemctl is-active hazmon-collector; test -e /etc/hazmon-collector; echo $?")
    assert out.stdout.split()[-1] == "1" and "active" not in out.stdout.split()[0:1], out.stdout
    prog = ledger.progress(ledger.read(rollout.ledger))
    code = next(e.code for e in rollout.lab.inventory.enterprises if e.slug == DECOMMISSIONED)
    assert prog[code].stage == "decommissioned"
