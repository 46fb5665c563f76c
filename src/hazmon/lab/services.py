"""Province and city services the lab runs as real processes: configs on lab addresses, argv lists.

Secrets reach them through 0600 files only, so no password is ever on a command line. The MQTT
broker is not among them: it is a real host (`province-broker`) the rollout's province_broker
role configures, as production's is.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import urlsplit

from hazmon.inventory.model import MirrorEndpoint, Province, SipServer
from hazmon.inventory.secrets import SIP_SHARED_CREDENTIAL, sip_credential
from hazmon.lab.mirror import DEFAULT_CACHE as MIRROR_CACHE
from hazmon.lab.mirror import TREE
from hazmon.lab.plan import IPERF_PORT, LAB_NET, PROVINCE_ROUTER, LabPlan, PlanError


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    ns: str
    argv: list[str]
    listen: tuple[str, int, str] | None  # (address, port, "tcp"|"udp") to wait for
    control: Path | None = None


def write_private(path: Path, text: str) -> Path:
    """A new 0600 file (secrets, configs holding secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def registrar_http_args(sip: SipServer) -> list[str]:
    """--http-port from the inventory's sip.status_url, so that the registrar serves its state
    exactly where the NVR role waits for a registration (the lab's registrar binds the SIP host)."""
    if sip.status_url is None:
        return []
    url = urlsplit(sip.status_url)
    if url.scheme != "http" or url.hostname != str(sip.host) or url.path not in ("", "/", "/registrations.json"):
        raise PlanError(
            f"province.yml platform.sip.status_url: {sip.status_url}: the lab's registrar serves "
            f"http://{sip.host}:PORT/registrations.json only"
        )
    return ["--http-port", str(url.port or 80)]


def registrar_secret_args(plan: LabPlan, sip: SipServer, vault: dict[str, str], svc: Path) -> list[str]:
    """How the registrar gets its passwords (0600 files, never argv): the province's one, or, when the
    platform keeps one per device (platform.sip.per_device_passwords), the table device ID -> that
    NVR's own password, from the vault names hazmon.inventory.secrets.sip_credential gives."""
    if not sip.per_device_passwords:
        return ["--secret-file", str(write_private(svc / "sip.secret", vault[SIP_SHARED_CREDENTIAL] + "\n"))]
    table = {
        nvr.device_id: vault[sip_credential(site.enterprise.slug, nvr.name, True)]
        for site in plan.sites.values()
        for nvr in site.enterprise.devices.nvrs
        if nvr.gb28181 and nvr.device_id
    }
    return ["--device-secrets", str(write_private(svc / "sip-devices.json", json.dumps(table, sort_keys=True)))]


def province_services(
    plan: LabPlan,
    province: Province,
    vault: dict[str, str],
    run_dir: Path,
    inventory: Path,
    mirror_root: Path = MIRROR_CACHE,
) -> list[ServiceSpec]:
    p = province.platform
    svc = run_dir / "province"
    svc.mkdir(parents=True, exist_ok=True)
    ns = plan.province_ns
    specs: list[ServiceSpec] = []

    reg_state = svc / "registrar"
    reg_state.mkdir(exist_ok=True)
    control = run_dir / "control" / "registrar.sock"
    control.parent.mkdir(parents=True, exist_ok=True)
    specs.append(
        ServiceSpec(
            "svc:registrar",
            ns,
            [
                sys.executable,
                "-m",
                "hazmon.lab.sim.registrar",
                "--inventory",
                str(inventory),
                "--bind",
                str(p.sip.host),
                "--port",
                str(p.sip.port),
                "--server-id",
                p.sip.server_id,
                "--domain",
                p.sip.domain,
                *registrar_secret_args(plan, p.sip, vault, svc),
                "--state-dir",
                str(reg_state),
                "--control",
                str(control),
                *registrar_http_args(p.sip),
            ],
            (str(p.sip.host), p.sip.port, "udp"),
            control,
        )
    )

    am = p.alertmanager
    prom_conf = svc / "prometheus.yml"
    # The project's alert rules (monitors/), the same files production Prometheus loads.
    rules = Path(inventory).resolve().parents[1] / "monitors" / "prometheus" / "rules"
    lines = [
        "global: {scrape_interval: 15s, evaluation_interval: 15s}",
        f"rule_files: ['{rules}/*.rules.yml']",
        "scrape_configs:",
        "  - job_name: prometheus\n"
        f"    static_configs: [{{targets: ['{p.prometheus.host}:{p.prometheus.port}']}}]",
    ]
    if am is not None:
        lines.append(
            f"  - job_name: alertmanager\n    static_configs: [{{targets: ['{am.host}:{am.port}']}}]"
        )
        lines.append(
            f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am.host}:{am.port}']}}]"
        )
    prom_conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    specs.append(
        ServiceSpec(
            "svc:prometheus",
            ns,
            [
                "prometheus",
                f"--config.file={prom_conf}",
                f"--storage.tsdb.path={svc / 'prometheus-data'}",
                f"--web.listen-address={p.prometheus.host}:{p.prometheus.port}",
                "--web.enable-lifecycle",
            ],
            (str(p.prometheus.host), p.prometheus.port, "tcp"),
        )
    )
    if am is not None:
        am_conf = svc / "alertmanager.yml"
        am_conf.write_text("route: {receiver: lab-null}\nreceivers:\n  - name: lab-null\n", encoding="utf-8")
        specs.append(
            ServiceSpec(
                "svc:alertmanager",
                ns,
                [
                    "prometheus-alertmanager",
                    f"--config.file={am_conf}",
                    f"--storage.path={svc / 'alertmanager-data'}",
                    f"--web.listen-address={am.host}:{am.port}",
                    "--cluster.listen-address=",  # one instance: no gossip port
                ],
                (str(am.host), am.port, "tcp"),
            )
        )
    # iperf3 servers where capacity is measured: the province (city uplinks) and every city and
    # parent company (enterprise lines). Foreground, so that the PID we record is the server's.
    iperf = [("svc:iperf3:province", ns, str(PROVINCE_ROUTER))]
    iperf += [(f"svc:iperf3:city-{c.code}", c.ns, str(c.iperf_address)) for c in plan.cities.values()]
    iperf += [(f"svc:iperf3:{pn.ns}", pn.ns, str(pn.iperf_address)) for pn in plan.parents.values()]
    for name, where, addr in iperf:
        specs.append(
            ServiceSpec(
                name, where, ["iperf3", "-s", "-B", addr, "-p", str(IPERF_PORT)], (addr, IPERF_PORT, "tcp")
            )
        )
    specs += ntp_services(ns, p.ntp, svc)
    if p.mirror is not None:
        specs.append(mirror_service(ns, p.mirror, mirror_root))
    return specs


def ntp_services(ns: str, addresses: list[IPv4Address], svc: Path) -> list[ServiceSpec]:
    """A real chronyd per platform NTP address, serving the lab from the machine's clock.

    `-x`: it never adjusts the machine's clock (only serves it), and its pid file, drift file
    and command socket are its own, under the lab's run dir, so that neither a chronyd of the
    machine nor Debian's init script (which stops by /run/chrony/chronyd.pid) ever meets it.
    """
    specs = []
    for i, addr in enumerate(addresses):
        name = "svc:chrony" if i == 0 else f"svc:chrony-{i}"
        state = svc / name.removeprefix("svc:")
        state.mkdir(parents=True, exist_ok=True)
        os.chmod(state, 0o700)  # chronyd refuses a command socket in a wider directory
        conf = state / "chrony.conf"
        conf.write_text(
            "# hazmon lab: the province's NTP server; the machine's clock is the reference\n"
            f"bindaddress {addr}\n"
            f"allow {LAB_NET}\n"
            # No upstream in the lab: serve the local clock, at a stratum no real source loses to.
            "local stratum 8\n"
            f"pidfile {state / 'chronyd.pid'}\n"
            f"driftfile {state / 'chrony.drift'}\n"
            f"bindcmdaddress {state / 'chronyd.sock'}\n"
            "cmdport 0\n",
            encoding="utf-8",
        )
        # -d: foreground, so the recorded PID is chronyd's; -u root: the run dir is root's 0700.
        argv = ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)]
        specs.append(ServiceSpec(name, ns, argv, (str(addr), 123, "udp")))
    return specs


def mirror_service(ns: str, mirror: MirrorEndpoint, mirror_root: Path) -> ServiceSpec:
    """The province's package mirror (hazmon.lab.mirror serve) at the inventory's mirror URL."""
    url = urlsplit(mirror.url)
    host, port = mirror.netloc
    if url.scheme != "http" or url.path.rstrip("/") != "/" + TREE:
        raise PlanError(f"province.yml platform.mirror.url: {mirror.url}: the lab serves http://HOST[:PORT]/{TREE}")
    argv = [sys.executable, "-m", "hazmon.lab.mirror", "serve", "--root", str(mirror_root)]
    argv += ["--bind", host, "--port", str(port)]
    return ServiceSpec("svc:mirror", ns, argv, (host, port, "tcp"))
