"""Benchmark of the lab: lab up times, memory per host, whether 40 gateways fit.

    .venv/bin/python bench/bench_lab.py [INVENTORY]

cold up  = the base image is cached, no lab runs and the run dir is absent (first up after a down);
warm up  = down, then up again at once (page cache and Python bytecode warm);
no-op up = up while the lab is up (idempotence: nothing to start).
Memory per host = PSS and RSS of the host's processes (its systemd and everything under it; the
nspawn supervisor outside the container is listed apart). A 40-gateway lab is extrapolated from
the measured per-host and per-simulator figures (the synthetic inventory generator was not ready).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from hazmon.inventory.synth import generate
from hazmon.lab import mirror
from hazmon.lab.image import ensure_base, is_cached
from hazmon.lab.lab import Lab
from hazmon.lab.procs import alive, descendants, pss_bytes

MB = 2**20


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    inventory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("inventories/lab")
    lab = Lab(inventory_root=inventory, log=lambda msg: print("  " + msg))
    cached = is_cached(lab.image_cache)
    t = time.monotonic()
    ensure_base(lab.image_cache, log=lambda msg: print("  " + msg))
    print(
        f"base image: {'cached' if cached else f'built in {time.monotonic() - t:.1f} s'} ({lab.image_cache})"
    )
    # The province's package mirror (built in `lab up` too; timed here apart, cached once built).
    mirror_cached = mirror.is_cached(lab.mirror_cache, lab.image_cache / "rootfs")
    t = time.monotonic()
    m = mirror.ensure_mirror(lab.mirror_cache, lab.image_cache / "rootfs", log=lambda msg: print("  " + msg))
    took = "cached" if mirror_cached else f"built in {time.monotonic() - t:.1f} s"
    print(f"package mirror: {took}, {len(m.manifest())} packages, {m.size_bytes() / 1e6:.1f} MB ({m.tree})")

    lab.down()
    free_before = mem_available()
    t = time.monotonic()
    lab.up()
    cold = time.monotonic() - t
    t = time.monotonic()
    lab.up()
    noop = time.monotonic() - t
    time.sleep(10)  # let hosts settle (journald, sshd) before measuring memory
    st = lab.state()
    hosts = {r.extra["host"]: r for r in st.processes.values() if r.kind == "host" and alive(r)}
    pss = {h: pss_bytes(descendants(r.pid)[1:]) for h, r in hosts.items()}
    rss = {h: rss_bytes(descendants(r.pid)[1:]) for h, r in hosts.items()}
    nspawn_rss = statistics.mean(rss_bytes([r.pid]) for r in hosts.values())
    sims = [r for r in st.processes.values() if r.kind == "sim" and alive(r)]
    sim_rss = statistics.mean(rss_bytes([r.pid]) for r in sims) if sims else 0.0
    used = free_before - mem_available()
    lab.down()
    t = time.monotonic()
    lab.up()
    warm = time.monotonic() - t

    print(f"lab up: cold {cold:.1f} s, warm {warm:.1f} s, no-op {noop:.1f} s (target warm <= 60 s)")
    print(f"hosts: {len(hosts)}; simulators: {len(sims)}; whole lab used {used / MB:.0f} MB of RAM")
    for h in sorted(hosts):
        print(f"  {h:16s} PSS {pss[h] / MB:5.1f} MB  RSS {rss[h] / MB:5.1f} MB")
    print(
        f"per host: PSS mean {statistics.mean(pss.values()) / MB:.1f} MB, "
        f"max {max(pss.values()) / MB:.1f} MB; "
        f"RSS mean {statistics.mean(rss.values()) / MB:.1f} MB, max {max(rss.values()) / MB:.1f} MB "
        f"(target <= 80 MB); nspawn supervisor RSS {nspawn_rss / MB:.1f} MB each"
    )
    print(f"simulator RSS mean {sim_rss / MB:.1f} MB")
    # 40 gateways = 40 enterprises of three boxes each, with a DCS, an NVR and a switch simulator each;
    # RSS (not PSS) is used so that the estimate does not count on sharing.
    per_ent = 3 * (max(rss.values()) + nspawn_rss) + 3 * sim_rss
    est = 40 * per_ent
    print(
        f"40-gateway lab (extrapolated, RSS, no sharing assumed): {est / MB:.0f} MB "
        f"vs {mem_available() / MB:.0f} MB available now -> "
        f"{'fits' if est < 0.8 * mem_available() else 'does NOT fit'}"
    )
    lab.down()
    measure_synthetic_lab()
    return 0


def measure_synthetic_lab(enterprises: int = 14) -> None:
    """Bring up a lab of about 40 gateways from the synthetic generator and measure it."""
    with tempfile.TemporaryDirectory(prefix="hazmon-lab40-") as tmp:
        generate(Path(tmp) / "synth", enterprises=enterprises, seed=40)
        big = Lab(inventory_root=Path(tmp) / "synth", run_dir=Path(tmp) / "run", log=lambda msg: None)
        free_before = mem_available()
        t = time.monotonic()
        try:
            big.up()
            took = time.monotonic() - t
            time.sleep(10)
            st = big.state()
            hosts = [r for r in st.processes.values() if r.kind == "host" and alive(r)]
            procs = [r for r in st.processes.values() if alive(r)]
            used = free_before - mem_available()
        finally:
            big.down()
        print(
            f"synthetic lab ({enterprises} enterprises): {len(hosts)} gateway/AI-box hosts, {len(procs)} "
            f"processes, up in {took:.0f} s, used {used / MB:.0f} MB of RAM of {free_before / MB:.0f} MB "
            f"available -> {'fits' if used < 0.8 * free_before else 'does NOT fit'}"
        )


if __name__ == "__main__":
    sys.exit(main())
