"""Field devices of a site: which simulator to start for each DCS/GDS, NVR and switch, with what options.

Options follow the simulator contract: --inventory,
--enterprise, --bind, --port, --secret-file, --control, --state-dir, plus per-simulator ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hazmon.inventory.model import DataSource, Nvr, Protocol
from hazmon.lab import tls
from hazmon.lab.plan import Site, source_address
from hazmon.lab.services import write_private

HTTP_PORT = 80
HTTPS_PORT = 443


@dataclass(frozen=True)
class SimSpec:
    name: str  # process name in the run state, e.g. sim:dcs:labe0001:dcs
    kind: str  # dcs | nvr | switch
    ns: str
    argv: list[str]
    listen: tuple[str, int, str] | None
    control: Path
    serial: str | None = None  # modbus_rtu: the data source whose pty pair the lab makes


def sim_name(kind: str, slug: str, item: str) -> str:
    return f"sim:{kind}:{slug}:{item}"


def control_path(run_dir: Path, kind: str, slug: str, item: str) -> Path:
    return run_dir / "control" / f"{kind}-{slug}-{item}.sock"


def tty_links(run_dir: Path, slug: str, source: str) -> tuple[Path, Path]:
    """The pty pair of a Modbus RTU line: (simulator end, gateway end)."""
    base = run_dir / "tty"
    return base / f"{slug}-{source}.sim", base / f"{slug}-{source}.gw"


def _source_port(src: DataSource) -> int | None:
    if src.protocol is Protocol.MODBUS_TCP:
        return src.port or 502
    if src.protocol is Protocol.OPC and src.opc is not None and src.opc.endpoint:
        return urlsplit(src.opc.endpoint).port or 4840
    return None


def tls_dir(run_dir: Path) -> Path:
    """Where the run's CA and the devices' certificates are: the control node verifies the NVRs'
    HTTPS against <this>/ca.crt (inventories/lab/group_vars/all/nvr.yml, nvr_isapi_ca_file)."""
    return run_dir / "tls"


def lab_ca(run_dir: Path) -> tls.LabCa:
    """The lab run's CA, made on first use."""
    return tls.ensure_ca(tls_dir(run_dir))


def nvr_tls_args(nvr: Nvr, slug: str, run_dir: Path) -> tuple[list[str], int]:
    """The NVR sim's HTTP port and, when the model says the NVR has HTTPS, its certificate for its
    address and the HTTPS port (the inventory's isapi.port is the port of its scheme)."""
    if nvr.isapi.scheme == "http":
        return [], nvr.isapi.port or HTTP_PORT
    base = tls_dir(run_dir) / f"nvr-{slug}-{nvr.name}"
    cert = tls.issue(lab_ca(run_dir), str(nvr.address), Path(f"{base}.crt"), Path(f"{base}.key"),
                     name=f"{slug} {nvr.name}")
    port = nvr.isapi.port or HTTPS_PORT
    return ["--tls-cert", str(cert.cert), "--tls-key", str(cert.key), "--https-port", str(port)], HTTP_PORT


def site_sims(site: Site, inventory: Path, vault: dict[str, str], run_dir: Path) -> list[SimSpec]:
    ent = site.enterprise
    slug = ent.slug
    secrets = run_dir / "secrets"
    out: list[SimSpec] = []

    def base(kind: str, item: str, bind: str, port: int | None) -> tuple[list[str], Path, Path]:
        ctl = control_path(run_dir, kind, slug, item)
        ctl.parent.mkdir(parents=True, exist_ok=True)
        state = run_dir / "sims" / f"{kind}-{slug}-{item}"
        state.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            f"hazmon.lab.sim.{kind}",
            "--inventory",
            str(inventory),
            "--enterprise",
            ent.code,
            "--bind",
            bind,
            "--control",
            str(ctl),
            "--state-dir",
            str(state),
        ]
        if port is not None:
            argv += ["--port", str(port)]
        return argv, ctl, state

    for src in ent.data_sources:
        addr = source_address(src)
        port = _source_port(src)
        argv, ctl, _ = base("dcs", src.name, str(addr) if addr else "127.0.0.1", port)
        argv += ["--source", src.name]
        serial = None
        if src.protocol is Protocol.MODBUS_RTU:
            sim_end, _ = tty_links(run_dir, slug, src.name)
            argv += ["--serial", str(sim_end)]
            serial = src.name
        if src.opc is not None and src.opc.credential:
            argv += [
                "--secret-file",
                str(write_private(secrets / f"dcs-{slug}-{src.name}", vault[src.opc.credential] + "\n")),
            ]
        listen = (str(addr), port, "tcp") if addr and port else None
        out.append(SimSpec(sim_name("dcs", slug, src.name), "dcs", site.ns, argv, listen, ctl, serial))
    for nvr in ent.devices.nvrs:
        https, http_port = nvr_tls_args(nvr, slug, run_dir)
        argv, ctl, _ = base("nvr", nvr.name, str(nvr.address), http_port)
        argv += [
            "--nvr",
            nvr.name,
            *https,
            "--secret-file",
            str(write_private(secrets / f"nvr-{slug}-{nvr.name}", vault[nvr.credential] + "\n")),
        ]
        # The sim opens HTTPS before HTTP: the HTTP port answering means both do.
        listen = (str(nvr.address), http_port, "tcp")
        out.append(SimSpec(sim_name("nvr", slug, nvr.name), "nvr", site.ns, argv, listen, ctl))
    sw = ent.devices.switch
    if sw is not None:
        argv, ctl, _ = base("switch", sw.name, str(sw.address), 22)
        argv += [
            "--secret-file",
            str(write_private(secrets / f"switch-{slug}-{sw.name}", vault[sw.credential] + "\n")),
        ]
        out.append(
            SimSpec(
                sim_name("switch", slug, sw.name), "switch", site.ns, argv, (str(sw.address), 22, "tcp"), ctl
            )
        )
    return out
