"""The cached base root file system every lab host boots (debootstrap, built once).

Hosts share it read-only through an overlay, so the base must be complete before any host
starts: it is built in a temporary directory and renamed into place, and a marker file records
what was built so that a changed package list rebuilds it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("HAZMON_LAB_CACHE", "/var/cache/hazmon/lab-base"))
SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "openssh-server", "python3", "iproute2", "sudo", "procps")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
MARKER = ".hazmon-lab-base"

# Units a minimal lab host does not need: they cost memory or time, or fail without a host D-Bus
# and would leave the host "degraded" for no reason of ours.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-logind.service",
    "getty@tty1.service",
    "console-getty.service",
    "systemd-timesyncd.service",
    "systemd-networkd-wait-online.service",
    "systemd-resolved.service",
    "systemd-journald-audit.socket",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
)


@dataclass(frozen=True)
class BaseImage:
    root: Path
    built_seconds: float | None  # None when the cache was used

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs"


def debian_mirror(sources_dir: Path = Path("/etc/apt/sources.list.d")) -> str:
    """The Debian mirror this machine's apt already uses (LAB.md): read, never guessed."""
    candidates = sorted(sources_dir.glob("*.sources")) + sorted(sources_dir.glob("*.list"))
    candidates.append(Path("/etc/apt/sources.list"))
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for uri in re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M
        ):
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return FALLBACK_MIRROR


def _marker_text() -> str:
    return f"suite={SUITE}\npackages={','.join(PACKAGES)}\nmasked={','.join(MASKED_UNITS)}\nversion=2\n"


def is_cached(cache: Path = DEFAULT_CACHE) -> bool:
    marker = cache / MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8") == _marker_text()


def _customise(rootfs: Path) -> None:
    """Make the base a quiet, key-only SSH host; per-host things (name, key) come at boot."""
    systemd_dir = rootfs / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = systemd_dir / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    sshd_conf = rootfs / "etc/ssh/sshd_config.d/hazmon-lab.conf"
    sshd_conf.write_text(
        "# hazmon lab: root logs in with the lab key only\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n",
        encoding="utf-8",
    )
    # The host name is given by nspawn --hostname; an empty file keeps the base's name out of it.
    (rootfs / "etc/hostname").write_text("", encoding="utf-8")
    # Each host gets its own machine id from nspawn rather than sharing the base's.
    (rootfs / "etc/machine-id").write_text("", encoding="utf-8")
    (rootfs / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    journald = rootfs / "etc/systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    # Volatile, small journal: the lab host's memory budget is 80 MB.
    (journald / "hazmon-lab.conf").write_text(
        "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n", encoding="utf-8"
    )


def ensure_base(cache: Path = DEFAULT_CACHE, log=print) -> BaseImage:
    """Return the cached base image, building it first if absent (about a minute)."""
    if is_cached(cache):
        return BaseImage(cache, None)
    started = time.monotonic()
    cache.parent.mkdir(parents=True, exist_ok=True)
    work = cache.parent / (cache.name + ".building")
    if work.exists():
        shutil.rmtree(work)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    mirror = debian_mirror()
    log(f"building the lab base image from {mirror} (once; cached in {cache})")
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), mirror],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    _customise(rootfs)
    (work / MARKER).write_text(_marker_text(), encoding="utf-8")
    if cache.exists():
        shutil.rmtree(cache)
    work.rename(cache)
    return BaseImage(cache, time.monotonic() - started)
