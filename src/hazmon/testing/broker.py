"""The province broker as the rollout configures it, run on loopback for tests and benchmarks.

The configuration is not written here: `render` runs the `province_broker` role's own
configuration tasks (`tasks_from: configure`, accounts from the inventory model, passwords from
its vault) with ansible-playbook into a folder, and `RoleBroker` starts Debian's Mosquitto on
Debian's main `mosquitto.conf` with only its paths moved into that folder. What a test proves
against it (identity, limits, custody) is what the province's broker does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.inventory.secrets import VAULT_FILE, VAULT_PASS_FILE
from hazmon.testing.procs import free_port, wait_port

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("render_broker.yml")
DEBIAN_CONF = Path("/etc/mosquitto/mosquitto.conf")
# Debian's main file, if the package's is not there (the same lines, Debian 12's mosquitto 2.0).
_DEBIAN_DEFAULT = """\
pid_file /run/mosquitto/mosquitto.pid
persistence true
persistence_location /var/lib/mosquitto/
log_dest file /var/log/mosquitto/mosquitto.log
include_dir /etc/mosquitto/conf.d
"""


class BrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Rendered:
    folder: Path  # the role's province_broker_config_dir
    main_conf: Path  # Debian's mosquitto.conf, paths moved into `folder`
    data: Path  # persistence_location
    log: Path
    host: str
    port: int


def render(inventory_root: Path, folder: Path, host: str = "127.0.0.1", port: int | None = None,
           extra_vars: dict[str, object] | None = None) -> Rendered:
    """Run the province_broker role's configuration tasks into `folder` (ansible-playbook, local)."""
    port = port or free_port(host)
    root = inventory_root.resolve()
    (folder / "conf.d").mkdir(parents=True, exist_ok=True)
    variables = {
        "province_broker_config_dir": str(folder),
        "province_broker_listen_address": host,
        "province_broker_port": port,
        "province_broker_tls": False,
        "province_broker_inventory_root": str(root),
        "province_broker_manage_service": False,  # this folder is not the host's Mosquitto
        "ansible_python_interpreter": sys.executable,  # the control node runs the modules here
        **(extra_vars or {}),
    }
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "--vault-password-file", str(root / VAULT_PASS_FILE), "-e", f"@{root / VAULT_FILE}",
            "-e", json.dumps(variables), str(PLAYBOOK)]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_STRATEGY": "linear",
           "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise BrokerError(f"the province_broker role did not render: {done.stdout[-3000:]}{done.stderr[-2000:]}")
    data, log = folder / "data", folder / "mosquitto.log"
    main_conf = folder / "mosquitto.conf"
    main_conf.write_text(_main_conf(folder, data, log), encoding="utf-8")
    return Rendered(folder, main_conf, data, log, host, port)


def _main_conf(folder: Path, data: Path, log: Path) -> str:
    text = DEBIAN_CONF.read_text(encoding="utf-8") if DEBIAN_CONF.is_file() else _DEBIAN_DEFAULT
    moves = {
        "pid_file": None,  # no pid file: we know the PID
        "persistence_location": f"{data}/",
        "log_dest": f"file {log}",
        "include_dir": str(folder / "conf.d"),
    }
    out = []
    for line in text.splitlines():
        key = line.split(" ", 1)[0]
        if key in moves:
            if moves[key] is not None:
                out.append(f"{key} {moves[key]}")
            continue
        out.append(line)
    # Debian's Mosquitto drops to its own user; the test's private temp folders (0700) would be
    # closed to it. Staying root changes who reads the files, not what the broker enforces.
    out.append("user root")
    return "\n".join(out) + "\n"


@dataclass
class RoleBroker:
    """Mosquitto on a rendered configuration; started, killed and restarted by its own PID."""

    rendered: Rendered
    proc: subprocess.Popen | None = None
    peak_rss_bytes: int = 0
    peak_db_bytes: int = 0
    crashes: int = 0
    _samples: list[tuple[float, int, int]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.rendered.host

    @property
    def port(self) -> int:
        return self.rendered.port

    @property
    def db(self) -> Path:
        return self.rendered.data / "mosquitto.db"

    def start(self) -> None:
        self.rendered.data.mkdir(exist_ok=True)
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.rendered.main_conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_port(self.host, self.port, timeout=15)
        except TimeoutError as exc:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port}: {err}{self.log_tail()}") from exc

    def crash(self) -> None:
        """SIGKILL: what a power cut or an OOM kill does (nothing saved since the last autosave)."""
        if self.proc is not None and self.proc.poll() is None:
            self.sample()
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.crashes += 1
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def sample(self) -> tuple[int, int]:
        """The broker's resident memory and persistence file now; the peaks are kept."""
        rss = 0
        if self.proc is not None and self.proc.poll() is None:
            try:
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
                m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
                rss = int(m.group(1)) * 1024 if m else 0
            except OSError:
                pass
        size = self.db.stat().st_size if self.db.exists() else 0
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        self.peak_db_bytes = max(self.peak_db_bytes, size)
        self._samples.append((time.time(), rss, size))
        return rss, size

    def conf_value(self, key: str) -> str | None:
        """A setting of the rendered hazmon.conf (what the role wrote)."""
        for line in (self.rendered.folder / "conf.d" / "hazmon.conf").read_text().splitlines():
            if line.startswith(key + " "):
                return line.split(" ", 1)[1].strip()
        return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.rendered.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
