"""Network namespaces, veth links, addresses, routes and tc shaping: thin, idempotent `ip`/`tc` calls.

Every call is "ensure": adding what exists already changes nothing, so `lab up` twice is a no-op.
"""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from hazmon.lab.plan import LAB_NET, Link, Route

NETNS_DIR = Path("/run/netns")


class NetError(RuntimeError):
    """An `ip`/`tc` call failed: the message gives the command and what it said."""


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done


def in_ns(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else argv


def ns_exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def lab_namespaces(prefix: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def ensure_ns(ns: str, forward: bool) -> None:
    if not ns_exists(ns):
        run(["ip", "netns", "add", ns])
    run(in_ns(ns, ["ip", "link", "set", "lo", "up"]))
    if forward:
        # Per-namespace sysctl: the machine's own forwarding setting is never touched.
        run(in_ns(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))


def delete_ns(ns: str) -> None:
    if ns_exists(ns):
        run(["ip", "netns", "del", ns])


def if_exists(ns: str, ifname: str) -> bool:
    return run(in_ns(ns, ["ip", "link", "show", "dev", ifname]), check=False).returncode == 0


def _check(addr: IPv4Address | IPv4Network) -> None:
    net = addr if isinstance(addr, IPv4Network) else IPv4Network(f"{addr}/32")
    if not net.subnet_of(LAB_NET) and net.prefixlen != 0:
        raise ValueError(f"{addr}: the lab only uses 198.18.0.0/15 (LAB.md)")


def ensure_veth(ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
    """A veth pair made directly inside its two namespaces (no name ever clashes in the root)."""
    if if_exists(ns_a, if_a) and if_exists(ns_b, if_b):
        return
    if if_exists(ns_a, if_a):
        run(in_ns(ns_a, ["ip", "link", "del", if_a]))
    if if_exists(ns_b, if_b):
        run(in_ns(ns_b, ["ip", "link", "del", if_b]))
    cmd = ["ip", "link", "add", if_a]
    if ns_a:
        cmd += ["netns", ns_a]
    cmd += ["type", "veth", "peer", "name", if_b]
    if ns_b:
        cmd += ["netns", ns_b]
    run(cmd)


def ensure_addr(ns: str, ifname: str, addr: IPv4Address, prefix: int) -> None:
    _check(addr)
    run(in_ns(ns, ["ip", "addr", "replace", f"{addr}/{prefix}", "dev", ifname]))


def link_up(ns: str, ifname: str) -> None:
    run(in_ns(ns, ["ip", "link", "set", "dev", ifname, "up"]))


def link_down(ns: str, ifname: str) -> None:
    run(in_ns(ns, ["ip", "link", "set", "dev", ifname, "down"]))


def ensure_link(link: Link) -> None:
    ensure_veth(link.ns_a, link.if_a, link.ns_b, link.if_b)
    ensure_addr(link.ns_a, link.if_a, link.addr_a, link.subnet.prefixlen)
    ensure_addr(link.ns_b, link.if_b, link.addr_b, link.subnet.prefixlen)
    link_up(link.ns_a, link.if_a)
    link_up(link.ns_b, link.if_b)
    if link.rate_mbps is not None:
        shape(link, link.rate_mbps)


def ensure_route(route: Route) -> None:
    _check(route.dest)
    _check(route.via)
    run(in_ns(route.ns, ["ip", "route", "replace", str(route.dest), "via", str(route.via), "dev", route.dev]))


def tbf_args(rate_mbps: float) -> list[str]:
    """Token bucket for a line of `rate_mbps`: burst = 10 ms of traffic (at least 32 KB)."""
    rate_bps = int(rate_mbps * 1_000_000)
    burst = max(32 * 1024, rate_bps // 8 // 100)
    return ["tbf", "rate", f"{rate_bps}bit", "burst", str(burst), "latency", "50ms"]


def shape(link: Link, rate_mbps: float) -> None:
    """Shape both directions (each end's egress) to `rate_mbps`; replaces any earlier shaping."""
    for ns, ifname in ((link.ns_a, link.if_a), (link.ns_b, link.if_b)):
        run(in_ns(ns, ["tc", "qdisc", "replace", "dev", ifname, "root", *tbf_args(rate_mbps)]))


def shaped_rate(ns: str, ifname: str) -> float | None:
    """The tbf rate on an interface in Mbit/s, as tc reports it (None if not shaped)."""
    out = run(in_ns(ns, ["tc", "-j", "qdisc", "show", "dev", ifname]), check=False)
    if out.returncode != 0:
        return None
    import json

    for q in json.loads(out.stdout or "[]"):
        if q.get("kind") == "tbf":
            return q["options"]["rate"] * 8 / 1_000_000
    return None


def ensure_bridge(ns: str, name: str) -> None:
    if not if_exists(ns, name):
        run(in_ns(ns, ["ip", "link", "add", name, "type", "bridge"]))
    link_up(ns, name)


def enslave(ns: str, ifname: str, bridge: str) -> None:
    run(in_ns(ns, ["ip", "link", "set", "dev", ifname, "master", bridge]))


def netns_mounted() -> bool:
    """Whether /run/netns is itself a mount point (`ip netns add` makes it one the first time)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return any(line.split()[4] == str(NETNS_DIR) for line in fh)
