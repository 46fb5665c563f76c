"""Lab hosts: systemd-nspawn containers booting the cached base through a per-host overlay.

Recipe from LAB.md: no machined and no host D-Bus here, so --register=no --keep-unit; the base
is shared read-only (--overlay=BASE:UPPER:/), each host writes only into its own UPPER.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from hazmon.lab.plan import Host

# How Ansible logs in to a lab host, in one place: the lab inventory's group_vars (which says why
# host keys are not checked), read by Ansible through the inventory and read here for what runs
# on other inventories (the province play on a synthetic one) or on INI inventories of the lab.
LAB_CONNECTION = Path(__file__).resolve().parents[3] / "inventories" / "lab" / "group_vars" / "all" / "connection.yml"

NSPAWN_ENV = {
    "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "0",
    # /proc/sys/net writable (the rest of /proc/sys stays read-only): gateway_base sets net.*
    # sysctls. Safe: each host has its own network namespace, so they are the host's own.
    "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network",
}


def upper_dir(run_dir: Path, host: Host) -> Path:
    return run_dir / "hosts" / host.name / "upper"


def ensure_ssh_key(run_dir: Path) -> Path:
    """The lab's SSH key (generated per lab, kept in the run dir, removed by `down`)."""
    key = run_dir / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(key.parent, 0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hazmon-lab", "-f", str(key)],
            check=True,
        )
    return key


def nspawn_argv(host: Host, rootfs: Path, run_dir: Path, key: Path, serial_tty: str | None) -> list[str]:
    upper = upper_dir(run_dir, host)
    upper.mkdir(parents=True, exist_ok=True)
    argv = [
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "-D",
        str(rootfs),
        "--read-only",
        f"--overlay={rootfs}:{upper}:/",
        f"--network-namespace-path=/run/netns/{host.ns}",
        f"--hostname={host.name}",
        "-M",
        host.name,
        "--bind-ro",
        f"{key}.pub:/root/.ssh/authorized_keys",
        "-b",
        "--console=passive",
        # gateway_base loads an nftables ruleset: needs CAP_NET_ADMIN, confined to the host's netns.
        "--capability=CAP_NET_ADMIN",
    ]
    if serial_tty is not None:
        # The gateway sees its RS-485 line as a tty (D1b): the pty's other end is the simulator's.
        argv += [f"--bind={serial_tty}:/dev/ttyS1"]
    return argv


def wipe_upper(run_dir: Path, host: Host) -> None:
    """Make the host bare again: everything it wrote lives in its UPPER only."""
    hdir = run_dir / "hosts" / host.name
    if hdir.exists():
        shutil.rmtree(hdir)


def ssh_argv(key: Path, address: str, command: str, timeout: int = 10) -> list[str]:
    return [
        "ssh",
        "-i",
        str(key),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        f"ConnectTimeout={timeout}",
        f"root@{address}",
        command,
    ]


def connection_vars(ssh_key: Path) -> dict[str, str]:
    """The lab's connection variables (LAB_CONNECTION), logging in with `ssh_key`: the run dir's
    key, wherever the run dir is."""
    data = yaml.safe_load(LAB_CONNECTION.read_text(encoding="utf-8")) or {}
    out = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in data.items()}
    out["ansible_ssh_private_key_file"] = str(ssh_key)
    return out


def ini_vars(variables: dict[str, str]) -> list[str]:
    """`name=value` lines of an INI inventory (Ansible splits them as a shell would)."""
    return [f"{k}={shlex.quote(v)}" for k, v in variables.items()]
