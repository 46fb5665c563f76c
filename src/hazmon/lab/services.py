"""Province and city services the lab runs as real processes: configs on lab addresses, argv lists.

Secrets reach them through 0600 files only (mosquitto's password file is hashed in place by
`mosquitto_passwd -U`, so no password is ever on a command line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hazmon.inventory.model import Province
from hazmon.lab.plan import IPERF_PORT, PROVINCE_ROUTER, LabPlan


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


def mosquitto_password_file(path: Path, users: dict[str, str]) -> Path:
    """Gateway accounts (user = enterprise code) hashed with mosquitto_passwd -U."""
    write_private(path, "".join(f"{u}:{p}\n" for u, p in sorted(users.items())))
    subprocess.run(["mosquitto_passwd", "-U", str(path)], check=True, capture_output=True)
    return path


def province_services(
    plan: LabPlan,
    province: Province,
    vault: dict[str, str],
    mqtt_users: dict[str, str],
    run_dir: Path,
    inventory: Path,
) -> list[ServiceSpec]:
    p = province.platform
    svc = run_dir / "province"
    svc.mkdir(parents=True, exist_ok=True)
    ns = plan.province_ns
    specs: list[ServiceSpec] = []

    passwd = mosquitto_password_file(svc / "mosquitto.passwd", mqtt_users)
    conf = svc / "mosquitto.conf"
    conf.write_text(
        f"listener {p.mqtt.port} {p.mqtt.host}\n"
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        "persistence false\n"
        # Run as the lab's user: the password file is 0600 and must stay so.
        "user root\n"
        "log_dest stdout\n"
        "max_queued_messages 1000\n",
        encoding="utf-8",
    )
    specs.append(
        ServiceSpec(
            "svc:mosquitto", ns, ["mosquitto", "-c", str(conf)], (str(p.mqtt.host), p.mqtt.port, "tcp")
        )
    )

    sip_secret = write_private(svc / "sip.secret", vault["vault_sip_password"] + "\n")
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
                "--secret-file",
                str(sip_secret),
                "--state-dir",
                str(reg_state),
                "--control",
                str(control),
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
    return specs
