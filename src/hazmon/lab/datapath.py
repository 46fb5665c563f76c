"""The data path on the lab: the real hazmon-collector where a data-acquisition gateway
sits, the real hazmon-tracker at the province, wired with the lab's broker accounts.

Until the rollout installs the collector inside the nspawn hosts, it runs in the daq host's
network namespace (`ip netns exec`): DCS on the LAN, broker across the shaped enterprise line,
city and province, exactly as the gateway sees them. The tracker runs in the province namespace
on the inventory's platform address. Secrets go into 0600 files only (never argv or logs).

Used by tests/e2e/test_data_path.py and by scripts/demo (`python -m hazmon.lab.datapath ...`);
every process is recorded by PID and start time and stopped by that PID only. Each is also recorded
in the lab's run state (kind `datapath`), so that `lab down` stops it when whoever started it could
not (a pytest or demo killed midway): the e2e session's `lab down` at its start then leaves no
tracker or collector of an earlier run behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hazmon import wire
from hazmon.collector.config import ClockConfig, dump_yaml
from hazmon.collector.render import render_config
from hazmon.inventory.model import Enterprise, Protocol
from hazmon.inventory.secrets import (
    TRACKER_API_CREDENTIAL,
    TRACKER_MQTT_CREDENTIAL,
    TRACKER_MQTT_USER,
    ensure_lab_vault,
    mqtt_credential,
)
from hazmon.lab.devices import tty_links
from hazmon.lab.lab import Lab, LabError, listening
from hazmon.lab.plan import Host
from hazmon.lab.procs import ProcRecord, alive, start_time, stop
from hazmon.lab.services import write_private
from hazmon.lab.state import LabState
from hazmon.tracker.store import read_seen

BIN = Path(sys.executable).parent  # the venv's bin: hazmon-collector, hazmon-tracker
PROCS_FILE = "procs.json"
DEMO_CLIENT_ID = "hazmon-tracker-demo"
DATAPATH_KIND = "datapath"  # of the lab run state's records of the processes started here


# ------------------------------------------------------------------ collector


@dataclass(frozen=True)
class CollectorSetup:
    enterprise: Enterprise
    host: Host  # the daq gateway the collector stands in for
    config: Path
    queue: Path
    metrics_port: int
    run_dir: Path  # the lab's: its run state records the process

    @property
    def ns(self) -> str:
        return self.host.ns


def daq_host(lab: Lab, enterprise: str) -> Host:
    site = lab.plan.site_for(enterprise)
    for host in lab.plan.hosts.values():
        if host.enterprise == site.enterprise.code and host.role == "daq_gateway":
            return host
    raise LabError(f"{enterprise}: no data-acquisition gateway (devices.daq_gateway) in the lab inventory")


def collector_setup(lab: Lab, enterprise: str, workdir: Path, vault: dict[str, str]) -> CollectorSetup:
    """Render the gateway's config from the inventory, with its queue and secrets under `workdir`."""
    host = daq_host(lab, enterprise)
    ent = lab.plan.sites[host.enterprise].enterprise
    secrets, state = workdir / "secrets", workdir / "state"
    cfg = render_config(lab.inventory, ent, secrets=secrets, state_dir=state)
    sources = []
    for src in cfg.sources:
        if src.protocol is Protocol.MODBUS_RTU and src.serial is not None:
            # Inside the host the line is /dev/ttyS1; from the host's namespace alone (same
            # filesystem as ours) it is the gateway end of the lab's pty pair.
            gw_end = os.path.realpath(tty_links(lab.run_dir, ent.slug, src.name)[1])
            src = src.model_copy(update={"serial": src.serial.model_copy(update={"port": gw_end})})
        sources.append(src)
    # The lab's hosts share this machine's kernel clock, which no lab daemon disciplines (the
    # province's chronyd only serves time): the kernel never says "synchronised" here, and
    # waiting for it would only delay the first samples by clock.sync_wait.
    cfg = cfg.model_copy(update={"sources": sources, "clock": ClockConfig(sync_wait=0)})
    _private_dir(secrets)
    write_private(secrets / "mqtt.password", vault[mqtt_credential(ent)] + "\n")
    for src in ent.data_sources:
        if src.opc is not None and src.opc.credential:
            write_private(secrets / f"opc-{src.name}.password", vault[src.opc.credential] + "\n")
    config = workdir / "collector.yml"
    config.write_text(dump_yaml(cfg), encoding="utf-8")
    return CollectorSetup(ent, host, config, cfg.queue.path, cfg.metrics.port, lab.run_dir)


def start_collector(setup: CollectorSetup, log: Path) -> subprocess.Popen:
    """The real collector in the gateway's namespace (`ip netns exec` execs it: the PID is its own)."""
    if listening(setup.ns, "127.0.0.1", setup.metrics_port):
        raise LabError(f"{setup.host.name}: something already listens on 127.0.0.1:{setup.metrics_port} in "
                       f"{setup.ns} (another collector of this gateway?); stop it first")
    return _popen(setup.ns, [str(BIN / "hazmon-collector"), "--config", str(setup.config)], log, setup.run_dir,
                  f"collector:{setup.enterprise.slug}")


def scrape_collector(setup: CollectorSetup) -> dict[str, float]:
    """The collector's /metrics, fetched inside its namespace (reachable there even with the line cut)."""
    out = subprocess.run(
        ["ip", "netns", "exec", setup.ns, "curl", "-sf", "--max-time", "3",
         f"http://127.0.0.1:{setup.metrics_port}/metrics"],
        capture_output=True, text=True, timeout=10,
    )
    if out.returncode != 0:
        raise LabError(f"{setup.host.name}: collector metrics not reachable (curl exit {out.returncode})")
    return parse_metrics(out.stdout)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{l="v",...}': value}, labels sorted; bare name when unlabelled."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


@dataclass(frozen=True)
class QueueTotals:
    """What the collector's durable queue says after it stopped (queue.py meta rows)."""

    last_seq: int
    enqueued_samples: int
    dropped_samples: int
    pending_batches: int
    epoch: int  # the queue's epoch: with the gateway and seq, what identifies a batch on the wire


def queue_totals(queue: Path) -> QueueTotals:
    db = sqlite3.connect(f"file:{queue}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        pending = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    finally:
        db.close()
    return QueueTotals(meta["last_seq"], meta["enqueued_samples"], meta["dropped_samples"], pending, meta["epoch"])


# ------------------------------------------------------------------ tracker


@dataclass(frozen=True)
class TrackerSetup:
    ns: str
    argv: list[str]
    state: Path
    url: str  # http://<platform tracker address>:<port>, reachable from the root namespace
    run_dir: Path  # the lab's: its run state records the process
    token: str | None = field(default=None, repr=False)  # the JSON API's bearer token (the vault's)


def tracker_url(lab: Lab, port: int | None = None) -> str:
    """Where the tracker listens: the inventory's province.platform.tracker (a province address)."""
    assert lab.inventory.province is not None  # the lab plan refused otherwise
    listen = lab.inventory.province.platform.tracker
    if listen is None:
        raise LabError(f"{lab.inventory_root}: province.platform.tracker is not set")
    return f"http://{listen.host}:{port if port is not None else listen.port}"


def tracker_setup(lab: Lab, workdir: Path, vault: dict[str, str], client_id: str,
                  port: int | None = None, evaluate_every: float = 2.0) -> TrackerSetup:
    """The tracker with its own state, logged in with the lab's tracker account, in the province."""
    url = tracker_url(lab, port)
    host, _, port_text = url.removeprefix("http://").rpartition(":")
    secrets = _private_dir(workdir / "secrets")
    password = write_private(secrets / "tracker-mqtt.password", vault[TRACKER_MQTT_CREDENTIAL] + "\n")
    token = write_private(secrets / "tracker-api.token", vault[TRACKER_API_CREDENTIAL] + "\n")
    state = workdir / "tracker.db"
    argv = [
        str(BIN / "hazmon-tracker"), "--inventory", str(lab.inventory_root.resolve()), "--state", str(state),
        "--client-id", client_id, "--username", TRACKER_MQTT_USER, "--password-file", str(password),
        "--api-token-file", str(token),
        "--listen-host", host, "--listen-port", port_text, "--evaluate-every", f"{evaluate_every:g}",
    ]
    return TrackerSetup(lab.plan.province_ns, argv, state, url, lab.run_dir, vault[TRACKER_API_CREDENTIAL])


def start_tracker(setup: TrackerSetup, log: Path) -> subprocess.Popen:
    return _popen(setup.ns, setup.argv, log, setup.run_dir, "tracker")


def tracker_get(url: str | TrackerSetup, path: str, token: str | None = None) -> str:
    """GET from the tracker. /api/ paths need the vault's token (TRACKER_API_CREDENTIAL): a
    TrackerSetup carries it; with a bare URL pass `token`. /metrics and /healthz are open."""
    if isinstance(url, TrackerSetup):
        base, token = url.url, token or url.token
    else:
        base = url
    req = urllib.request.Request(base + path)
    if token and path.startswith("/api/"):
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:  # a lab address (198.18.0.0/15)
        return resp.read().decode("utf-8")


def tracker_json(url: str | TrackerSetup, path: str, token: str | None = None) -> dict:
    return json.loads(tracker_get(url, path, token))


def tracker_metrics(url: str | TrackerSetup) -> dict[str, float]:
    return parse_metrics(tracker_get(url, "/metrics"))


def wait_tracker(setup: TrackerSetup, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Until the tracker serves and is subscribed to the broker (hazmon_tracker_mqtt_connected 1)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"hazmon-tracker exited with {proc.returncode} while starting")
        try:
            if tracker_metrics(setup).get("hazmon_tracker_mqtt_connected") == 1:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise LabError(f"hazmon-tracker not connected to the lab broker within {timeout:.0f}s")


def tracker_seqs(state: Path, gateway: str) -> tuple[list[int], list[int], int] | None:
    """The tracker's seen-seq intervals of a gateway's current queue epoch from its state file:
    (los, his, abandoned)."""
    seen = read_seen(state).get(gateway)
    if seen is None:
        return None
    seqs = seen[1]
    return seqs.los, seqs.his, seqs.abandoned


# ------------------------------------------------------------------ broker


def _mqtt_client(lab: Lab, client_id: str, user: str, password: str, clean: bool):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    assert lab.inventory.province is not None
    broker = lab.inventory.province.platform.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(user, password)
    client.connect(str(broker.host), broker.port, keepalive=10)  # a lab address, via hzl-root
    return client


def publish_as_gateway(lab: Lab, vault: dict[str, str], enterprise: str, batch: wire.Batch) -> None:
    """Publish one batch with the gateway's own account (QoS 1, wait for PUBACK): a replayed copy."""
    ent = lab.plan.site_for(enterprise).enterprise
    client = _mqtt_client(lab, f"{ent.code}-e2e-replay", ent.code, vault[mqtt_credential(ent)], clean=True)
    client.loop_start()
    try:
        info = client.publish(wire.topic(ent.city, ent.code, batch.source), batch.encode(), qos=1)
        info.wait_for_publish(10)
        if not info.is_published():
            raise LabError(f"{enterprise}: the broker did not acknowledge the replayed batch")
    finally:
        client.disconnect()
        client.loop_stop()


def forget_session(lab: Lab, vault: dict[str, str], client_id: str) -> None:
    """Drop the broker's persistent session of a tracker client id (clean session login), so that a
    finished test or demo leaves no queue behind in the lab broker."""
    client = _mqtt_client(lab, client_id, TRACKER_MQTT_USER, vault[TRACKER_MQTT_CREDENTIAL], clean=True)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()


# ------------------------------------------------------------------ processes


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # holds secret files
    return path


def _popen(ns: str, argv: list[str], log: Path, run_dir: Path, name: str) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal reaches it only through us, by PID
        )
    on_the_lab(run_dir, record(name, proc, ns, log))
    return proc


def on_the_lab(run_dir: Path, rec: ProcRecord) -> None:
    """Record a process started in the lab's namespaces in the lab's run state (`lab down` stops it by
    PID and start time); records of such processes that have ended are dropped meanwhile."""
    st = LabState.load(run_dir)
    if not st.exists():
        return  # no lab is up: no state to record into (nor namespaces for the process to run in)
    st.processes = {k: r for k, r in st.processes.items() if r.kind != DATAPATH_KIND or alive(r)}
    st.processes[f"{DATAPATH_KIND}:{rec.name}:{rec.pid}"] = rec
    st.save()


def terminate(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGTERM this process (ours, by PID), wait for it; SIGKILL if it does not exit. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def record(name: str, proc: subprocess.Popen, ns: str, log: Path) -> ProcRecord:
    return ProcRecord(name, proc.pid, start_time(proc.pid) or 0, ns, [], str(log), DATAPATH_KIND)


def save_records(path: Path, records: list[ProcRecord]) -> None:
    path.write_text(json.dumps([r.to_json() for r in records], indent=1), encoding="utf-8")


def stop_recorded(path: Path, log=print) -> None:
    """Stop the processes a previous `start` recorded (PID and start time must still match)."""
    if not path.exists():
        return
    for rec in reversed([ProcRecord.from_json(d) for d in json.loads(path.read_text(encoding="utf-8"))]):
        if alive(rec):
            log(f"stopping {rec.name} (pid {rec.pid})")
            stop(rec, timeout=20)
    path.unlink()


# ------------------------------------------------------------------ the demo's commands


def demo_enterprises(lab: Lab) -> list[str]:
    """Ready enterprises (readiness, derived) that have data sources and a daq gateway in the lab."""
    from hazmon.inventory.validate import validate

    _, readiness = validate(lab.inventory_root)
    out = []
    for r in readiness:
        ent = r.enterprise
        in_lab = ent.code in lab.plan.sites and ent.devices.daq_gateway is not None
        if r.ready and ent.data_sources and in_lab:
            out.append(ent.slug)
    return sorted(out)


def cmd_start(lab: Lab, out: Path, collectors: bool = True) -> int:
    procs = out / PROCS_FILE
    stop_recorded(procs)  # re-runnable: what an earlier run left is stopped first
    vault = ensure_lab_vault(lab.inventory)
    records: list[ProcRecord] = []
    try:
        tracker = tracker_setup(lab, out / "tracker", vault, client_id=DEMO_CLIENT_ID)
        if tracker.state.exists():
            for p in tracker.state.parent.glob(tracker.state.name + "*"):
                p.unlink()  # a fresh tracker state each run: the demo shows what arrives now
        log = out / "logs" / "tracker.log"
        proc = start_tracker(tracker, log)
        records.append(record("tracker", proc, tracker.ns, log))
        save_records(procs, records)
        wait_tracker(tracker, proc)
        print(f"tracker: pid {proc.pid} in {tracker.ns}, API {tracker.url}/api/v1/enterprises (log {log})")
        for slug in demo_enterprises(lab) if collectors else []:
            setup = collector_setup(lab, slug, out / "collectors" / slug, vault)
            log = out / "logs" / f"collector-{slug}.log"
            proc = start_collector(setup, log)
            records.append(record(f"collector:{slug}", proc, setup.ns, log))
            save_records(procs, records)
            srcs = ", ".join(f"{s.name} ({s.protocol.value})" for s in setup.enterprise.data_sources)
            print(f"collector {slug}: pid {proc.pid} in {setup.ns}, sources {srcs} (log {log})")
    except Exception:
        stop_recorded(procs)
        raise
    return 0


def cmd_view(lab: Lab, until: tuple[str, str] | None, timeout: float) -> int:
    """Print the tracker's per-enterprise view; with `until` (stalled|flowing, slug), wait for it first."""
    tracker = tracker_url(lab)
    token = ensure_lab_vault(lab.inventory)[TRACKER_API_CREDENTIAL]
    slugs = {e.code: e.slug for e in lab.inventory.enterprises}
    deadline = time.monotonic() + timeout
    while True:
        data = tracker_json(tracker, "/api/v1/enterprises", token)
        done = until is None
        if until is not None:
            want, slug = until
            mine = [s for e in data["enterprises"] if slugs.get(e["code"]) == slug for s in e["sources"]]
            done = bool(mine) and (any(s["stalled"] for s in mine) if want == "stalled"
                                   else all(not s["stalled"] and s["completeness"] == 1 for s in mine))
        if done or time.monotonic() > deadline:
            break
        time.sleep(1)
    now = time.time()
    print(f"   {'enterprise':<10} {'source':<8} {'exp':>3} {'fresh':>9} {'complete':>8} {'age s':>6} "
          f"{'stalled':>7} {'oor':>3} {'alarm':>5}")
    for e in data["enterprises"]:
        for s in e["sources"]:
            age = f"{now - s['last_sample_ts']:.1f}" if s["last_sample_ts"] else "never"
            comp = f"{s['completeness'] * 100:.0f} %" if s["completeness"] is not None else "-"
            alarm = sum((s.get("in_alarm") or {}).values())
            expected = "yes" if s["expected"] else "no"
            print(f"   {slugs.get(e['code'], e['code']):<10} {s['source']:<8} {expected:>3} "
                  f"{s['fresh_tags']:>3}/{s['expected_tags']:<5} {comp:>8} {age:>6} "
                  f"{'YES' if s['stalled'] else 'no':>7} {s['out_of_range']:>3} {alarm:>5}")
    if not done:
        assert until is not None
        print(f"{until[1]}: not {until[0]} within {timeout:.0f}s", file=sys.stderr)
        return 1
    return 0


def cmd_metrics(lab: Lab, prefix: str) -> int:
    tracker = tracker_url(lab)
    print(f"   GET {tracker}/metrics | grep ^{prefix}")
    for line in tracker_get(tracker, "/metrics").splitlines():
        if line.startswith(prefix):
            print("   " + line)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hazmon.lab.datapath", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="runtime files (default %(default)s)")
    sub = p.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start the tracker and a collector per ready enterprise with data sources")
    start.add_argument("--tracker-only", action="store_true",
                       help="only the tracker: the rollout installs the collectors on the gateways")
    view = sub.add_parser("view", help="print the tracker's per-enterprise view")
    view.add_argument("--until", nargs=2, metavar=("stalled|flowing", "SLUG"),
                      help="first wait until this enterprise has a stalled source / all sources complete")
    view.add_argument("--timeout", type=float, default=40.0)
    metrics = sub.add_parser("metrics", help="print the tracker's metric lines starting with PREFIX")
    metrics.add_argument("prefix")
    sub.add_parser("stop", help="stop what `start` started (by PID)")
    args = p.parse_args(argv)
    lab = Lab(log=lambda msg: None)
    if args.cmd != "stop" and not lab.state().exists():
        print("the lab is not up: run `hazmon lab up` first", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if args.cmd == "start":
            return cmd_start(lab, args.out.resolve(), collectors=not args.tracker_only)
        if args.cmd == "view":
            if args.until and args.until[0] not in ("stalled", "flowing"):
                p.error("--until: stalled or flowing")
            return cmd_view(lab, tuple(args.until) if args.until else None, args.timeout)
        if args.cmd == "metrics":
            return cmd_metrics(lab, args.prefix)
        stop_recorded(args.out.resolve() / PROCS_FILE)
        if lab.state().exists():
            forget_session(lab, ensure_lab_vault(lab.inventory), DEMO_CLIENT_ID)
        return 0
    except (LabError, OSError) as exc:
        print(f"datapath: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
