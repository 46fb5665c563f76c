"""The lab as a whole: up (idempotent), status, down (leaves nothing), reset and reboot of a host.

Everything `up` makes is recorded in the run state (hazmon.lab.state) as it is made, so that a
`down` after a failed or interrupted `up` still removes it all.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.inventory.ansible import PROVINCE_BROKER_HOST
from hazmon.inventory.loader import Inventory
from hazmon.inventory.secrets import ensure_lab_vault
from hazmon.inventory.validate import load_valid
from hazmon.lab import net
from hazmon.lab.devices import SimSpec, site_sims, tty_links
from hazmon.lab.hosts import (
    NSPAWN_ENV,
    connection_vars,
    ensure_ssh_key,
    ini_vars,
    nspawn_argv,
    upper_dir,
    wipe_upper,
)
from hazmon.lab.image import DEFAULT_CACHE, ensure_base
from hazmon.lab.mirror import DEFAULT_CACHE as MIRROR_CACHE
from hazmon.lab.mirror import ensure_mirror
from hazmon.lab.plan import NS_PREFIX, PROVINCE_ROUTER, ROOT_IF, Host, LabPlan, build_plan
from hazmon.lab.procs import ProcRecord, alive, descendants, pss_bytes, spawn, start_time, stop
from hazmon.lab.province import PlayError, PlayResult, run_province_play
from hazmon.lab.services import ServiceSpec, province_services
from hazmon.lab.state import DEFAULT_STATE_DIR, LabState

DEFAULT_INVENTORY = Path("inventories/lab")
LAN_BRIDGE = "lan"
START_TIMEOUT = 90.0
# Hosts boot one systemd each: on 2 cores a 40-gateway lab needs about 2 minutes, so the wait
# grows with the number of hosts started.
START_TIMEOUT_PER_HOST = 3.0
INOTIFY_BASE, INOTIFY_PER_HOST = 128, 16  # the kernel default, and room for one booted systemd


class LabError(RuntimeError):
    pass


def listening(ns: str, addr: str, port: int, proto: str = "tcp") -> bool:
    """Whether something listens on addr:port inside `ns` (asked of the kernel, no probe packet)."""
    flag = "-Hltn" if proto == "tcp" else "-Hlun"
    out = net.run(net.in_ns(ns, ["ss", flag]), check=False).stdout
    wanted = {f"{addr}:{port}", f"0.0.0.0:{port}", f"*:{port}", f"[::]:{port}"}
    return any(len(cols) >= 4 and cols[3] in wanted for cols in (ln.split() for ln in out.splitlines()))


@dataclass
class Lab:
    inventory_root: Path = DEFAULT_INVENTORY
    run_dir: Path = DEFAULT_STATE_DIR
    image_cache: Path = DEFAULT_CACHE
    mirror_cache: Path = MIRROR_CACHE
    log: Callable[[str], None] = print
    _inv: Inventory | None = field(default=None, repr=False)
    _plan: LabPlan | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ model

    @property
    def inventory(self) -> Inventory:
        if self._inv is None:
            self._inv, _ = load_valid(self.inventory_root)  # nothing runs on an invalid inventory
        return self._inv

    @property
    def plan(self) -> LabPlan:
        if self._plan is None:
            self._plan = build_plan(self.inventory)
        return self._plan

    @property
    def ssh_key(self) -> Path:
        return self.run_dir / "ssh" / "id_ed25519"

    def state(self) -> LabState:
        return LabState.load(self.run_dir)

    def host(self, name: str) -> Host:
        if name not in self.plan.hosts:
            raise LabError(f"{name}: no such lab host (hosts: {', '.join(sorted(self.plan.hosts))})")
        return self.plan.hosts[name]

    # ------------------------------------------------------------------ up

    def up(self) -> dict[str, float]:
        """Bring the lab up; what already runs is left alone. Returns timings of the phases."""
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        inv, plan = self.inventory, self.plan
        image = ensure_base(self.image_cache, log=self.log)
        if image.built_seconds is not None:
            timings["image_build_s"] = image.built_seconds
        if inv.province is not None and inv.province.platform.mirror is not None:
            # The province's package mirror (svc:mirror): cached like the image, free the second time.
            mirror = ensure_mirror(self.mirror_cache, image.rootfs, log=self.log)
            if mirror.built_seconds is not None:
                timings["mirror_build_s"] = mirror.built_seconds
        st = self.state()
        if st.inventory and Path(st.inventory) != self.inventory_root.resolve():
            raise LabError(f"a lab of {st.inventory} is up; `hazmon lab down` it first")
        st.inventory = str(self.inventory_root.resolve())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)  # secrets and the SSH key live below
        vault = ensure_lab_vault(inv)
        key = ensure_ssh_key(self.run_dir)
        self._inotify_room(len(plan.hosts))
        t1 = time.monotonic()
        self._network(st)
        timings["network_s"] = time.monotonic() - t1
        t2 = time.monotonic()
        pending: list[tuple[ProcRecord, tuple[str, int, str] | None, Path | None]] = []
        assert inv.province is not None  # build_plan refused otherwise
        for spec in province_services(
            plan, inv.province, vault, self.run_dir, self.inventory_root.resolve(), mirror_root=self.mirror_cache
        ):
            if self._available(spec.argv):
                pending.append(self._ensure_service(st, spec))
        for site in plan.sites.values():
            for sim in site_sims(site, self.inventory_root.resolve(), vault, self.run_dir):
                if not self._available(sim.argv):
                    continue
                if sim.serial is not None:
                    self._ensure_serial(st, site.enterprise.slug, sim.serial)
                pending.append(self._ensure_sim(st, sim))
        for host in plan.hosts.values():
            pending.append(self._ensure_host(st, host, image.rootfs, key))
        st.save()
        self._wait(pending)
        timings["processes_s"] = time.monotonic() - t2
        # The province's own hosts (the broker) are configured by the rollout's playbook, so
        # that right after `up` every gateway account works, as the rollout left it.
        if inv.province.platform.mqtt.tls:
            # The lab is no PKI: province_broker's preflight would rightly refuse TLS without the
            # province's certificate. (inventories/lab has tls: false; synthetic inventories do not.)
            self.log("warning: platform.mqtt.tls is true: the lab has no certificate for the broker, "
                     f"so {PROVINCE_BROKER_HOST} is up but not configured")
        else:
            timings["province_play_s"] = self.provision_province().seconds
        timings["total_s"] = time.monotonic() - t0
        return timings

    def provision_province(self) -> PlayResult:
        """Run playbooks/province.yml against the lab's province hosts (idempotent: changed=0 on
        a configured broker)."""
        try:
            result = run_province_play(self.inventory_root, self.ssh_key, self._log_path("ansible:province"))
        except PlayError as exc:
            raise LabError(str(exc)) from None
        return result

    def _available(self, argv: list[str]) -> bool:
        """A simulator module not written yet is reported and skipped, not fatal (built in parallel)."""
        if len(argv) > 2 and argv[1] == "-m" and importlib.util.find_spec(argv[2]) is None:
            self.log(f"warning: {argv[2]} does not exist yet; not started")
            return False
        return True

    def _network(self, st: LabState) -> None:
        plan = self.plan
        if not net.NETNS_DIR.exists() or not net.netns_mounted():
            st.netns_mount_made = st.netns_mount_made or not net.netns_mounted()
        for ns in plan.namespaces:
            net.ensure_ns(ns, forward=not ns.startswith(NS_PREFIX + "h-"))
            if ns not in st.namespaces:
                st.namespaces.append(ns)
            st.save()
        # The province's service addresses sit on its loopback: local to it, routed to by everyone.
        for addr in (PROVINCE_ROUTER, *plan.service_addresses):
            net.ensure_addr(plan.province_ns, "lo", addr, 32)
        for link in plan.links:
            net.ensure_link(link)
        for site in plan.sites.values():
            net.ensure_bridge(site.ns, LAN_BRIDGE)
            net.ensure_addr(site.ns, LAN_BRIDGE, site.gateway, site.lan.prefixlen)
            for addr in site.device_addresses:
                net.ensure_addr(site.ns, LAN_BRIDGE, addr, 32)
        for host in plan.hosts.values():
            net.ensure_veth(host.site_ns, host.site_if, host.ns, "eth0")
            if not host.point_to_point:
                net.enslave(host.site_ns, host.site_if, LAN_BRIDGE)
            net.link_up(host.site_ns, host.site_if)
            net.ensure_addr(host.ns, "eth0", host.address, host.prefix)
            net.link_up(host.ns, "eth0")
            default = ["ip", "route", "replace", "default", "via", str(host.gateway), "dev", "eth0"]
            # A /32 has no on-link gateway: `onlink` says the router is at the other end of eth0
            # (the province answers ARP for its own 198.18.0.1 there).
            net.run(net.in_ns(host.ns, default + (["onlink"] if host.point_to_point else [])))
            if host.point_to_point:
                net.run(net.in_ns(host.site_ns, ["ip", "route", "replace", f"{host.address}/32",
                                                 "dev", host.site_if, "src", str(host.gateway)]))
        for route in plan.routes:
            net.ensure_route(route)

    def _record(self, st: LabState, rec: ProcRecord) -> ProcRecord:
        st.processes[rec.name] = rec
        st.save()
        return rec

    def _running(self, st: LabState, name: str) -> ProcRecord | None:
        rec = st.processes.get(name)
        return rec if rec is not None and alive(rec) else None

    def _ensure_service(self, st: LabState, spec: ServiceSpec):
        running = self._running(st, spec.name)
        rec = running or self._record(
            st, spawn(spec.name, spec.ns, spec.argv, self._log_path(spec.name), "service")
        )
        return rec, spec.listen, spec.control

    def _ensure_sim(self, st: LabState, sim: SimSpec):
        rec = self._running(st, sim.name) or self._record(
            st,
            spawn(
                sim.name,
                sim.ns,
                sim.argv,
                self._log_path(sim.name),
                "sim",
                control=str(sim.control),
                sim=sim.kind,
            ),
        )
        return rec, sim.listen, sim.control

    def _ensure_serial(self, st: LabState, slug: str, source: str) -> None:
        name = f"helper:socat:{slug}:{source}"
        if self._running(st, name):
            return
        sim_end, gw_end = tty_links(self.run_dir, slug, source)
        sim_end.parent.mkdir(parents=True, exist_ok=True)
        for p in (sim_end, gw_end):
            if p.is_symlink():
                p.unlink()
        # The gateway's end as a Debian gateway's udev makes ttyS*: root:dialout 0660, so that
        # the collector runs unprivileged in group dialout (GID 20 on Debian, here and in the hosts).
        argv = ["socat", f"pty,raw,echo=0,link={sim_end}", f"pty,raw,echo=0,link={gw_end},group=20,perm=0660"]
        self._record(st, spawn(name, "", argv, self._log_path(name), "helper"))
        deadline = time.monotonic() + 10
        while not (sim_end.is_symlink() and gw_end.is_symlink()):
            if time.monotonic() > deadline:
                raise LabError(f"socat made no pty pair for {slug}/{source} (see {self._log_path(name)})")
            time.sleep(0.05)

    def _ensure_host(self, st: LabState, host: Host, rootfs: Path, key: Path):
        name = f"host:{host.name}"
        rec = self._running(st, name)
        if rec is None:
            tty = None
            if host.serial_source is not None:
                _, gw_end = tty_links(
                    self.run_dir, self.plan.sites[host.enterprise].enterprise.slug, host.serial_source
                )
                tty = os.path.realpath(gw_end)
            argv = nspawn_argv(host, rootfs, self.run_dir, key, tty)
            rec = self._record(
                st, spawn(name, "", argv, self._log_path(name), "host", env=NSPAWN_ENV, host=host.name)
            )
        return rec, (str(host.address), 22, "tcp"), None

    def _inotify_room(self, hosts: int) -> None:
        """Each booted systemd takes several inotify instances, all counted against root: past the
        kernel's default of 128 a 40-gateway lab's hosts never get sshd up. Raise the limit (never
        lower it); it is a limit, not a resource, so a higher value costs nothing unused."""
        knob = Path("/proc/sys/fs/inotify/max_user_instances")
        need = INOTIFY_BASE + INOTIFY_PER_HOST * hosts
        have = int(knob.read_text())
        if have < need:
            knob.write_text(f"{need}\n")
            self.log(f"raised fs.inotify.max_user_instances from {have} to {need} for {hosts} hosts")

    def _wait(self, pending) -> None:
        todo = list(pending)
        timeout = START_TIMEOUT + START_TIMEOUT_PER_HOST * sum(1 for rec, _, _ in todo if rec.kind == "host")
        deadline = time.monotonic() + timeout
        while todo:
            rest = []
            for rec, listen, control in todo:
                if not alive(rec):
                    tail = Path(rec.log).read_text(errors="replace")[-800:] if Path(rec.log).exists() else ""
                    raise LabError(f"{rec.name} exited while starting (log {rec.log}):\n{tail}")
                ok = True
                if listen is not None:
                    ns = rec.ns or self._host_ns(rec)
                    ok = listening(ns, listen[0], listen[1], listen[2])
                if ok and control is not None:
                    ok = control.exists()
                if not ok:
                    rest.append((rec, listen, control))
            todo = rest
            if todo and time.monotonic() > deadline:
                names = ", ".join(r.name for r, _, _ in todo)
                raise LabError(
                    f"not ready after {timeout:.0f}s: {names} (logs in {self.run_dir / 'logs'})"
                )
            if todo:
                time.sleep(0.2)

    def _host_ns(self, rec: ProcRecord) -> str:
        return self.plan.hosts[rec.extra["host"]].ns

    def _log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / (name.replace(":", "-") + ".log")

    # ------------------------------------------------------------------ down

    def down(self) -> list[str]:
        """Stop every recorded process, delete every namespace, remove the run dir. Returns problems."""
        st = self.state()
        problems: list[str] = []
        # Hosts are asked first (orderly systemd shutdown, all at once); then the trackers and
        # collectors tests or the demo started on the lab, the hosts, simulators, services and helpers.
        order = sorted(
            st.processes.values(),
            key=lambda r: {"datapath": 0, "host": 1, "sim": 2, "service": 3}.get(r.kind, 4),
        )
        hosts = [r for r in order if r.kind == "host"]
        for rec in hosts:
            if alive(rec):
                os.kill(rec.pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
        for rec in order:
            self._stop_record(rec, problems)
        for ns in st.namespaces:
            try:
                net.delete_ns(ns)
            except net.NetError as exc:
                problems.append(f"namespace {ns}: {exc}")
        if net.if_exists("", ROOT_IF):  # gone with its peer normally; never leave it
            net.run(["ip", "link", "del", ROOT_IF], check=False)
        if st.netns_mount_made and net.netns_mounted() and not any(net.NETNS_DIR.iterdir()):
            # `ip netns add` made /run/netns (a mount of itself) for our first namespace: undo both.
            net.run(["umount", str(net.NETNS_DIR)], check=False)
            with contextlib.suppress(OSError):
                net.NETNS_DIR.rmdir()
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        return problems

    def _stop_record(self, rec: ProcRecord, problems: list[str]) -> None:
        if not alive(rec):
            return
        # The container's init, identified by PID and start time like every record.
        leaders = [
            ProcRecord(f"{rec.name}:init", pid, start_time(pid) or 0, rec.ns, [], rec.log, "host")
            for pid in (descendants(rec.pid)[1:2] if rec.kind == "host" else [])
        ]
        try:
            stop(rec, timeout=15 if rec.kind == "host" else 5)
        except ProcessLookupError:
            return
        # If nspawn had to be killed, its container's init would live on: stop it by its PID too.
        for init in leaders:
            if alive(init):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init.pid, signal.SIGKILL)
                problems.append(f"{rec.name}: container init {init.pid} had to be killed")

    # ------------------------------------------------------------------ hosts

    def _restart_hosts(self, names: list[str], wipe: bool) -> None:
        """Stop every named host at once, (wipe,) boot them all, then one wait: a batch of hosts
        costs about one host's stop and boot, not their sum."""
        hosts = [self.host(n) for n in dict.fromkeys(names)]
        st = self.state()
        recs = [r for h in hosts if (r := st.processes.get(f"host:{h.name}")) is not None and alive(r)]
        for rec in recs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
        problems: list[str] = []
        for rec in recs:
            self._stop_record(rec, problems)  # waits for the shutdown asked for above
        for msg in problems:
            self.log(f"warning: {msg}")
        image = ensure_base(self.image_cache, log=self.log)
        pending = []
        for host in hosts:
            if wipe:
                wipe_upper(self.run_dir, host)
            upper_dir(self.run_dir, host).mkdir(parents=True, exist_ok=True)
            pending.append(self._ensure_host(st, host, image.rootfs, self.ssh_key))
        st.save()
        self._wait(pending)

    def reset_hosts(self, names: list[str]) -> None:
        """Stop the hosts, wipe what they wrote (their UPPERs), boot them bare, in parallel."""
        self._restart_hosts(names, wipe=True)

    def reset(self, name: str) -> None:
        """Stop the host, wipe what it wrote (its UPPER), boot it bare."""
        self.reset_hosts([name])

    def reboot(self, name: str) -> None:
        """Stop and boot the host again, keeping what it wrote."""
        self._restart_hosts([name], wipe=False)

    def reboot_hosts(self, names: list[str]) -> None:
        self._restart_hosts(names, wipe=False)

    # ------------------------------------------------------------------ status

    def status(self) -> dict:
        st = self.state()
        plan = self.plan if st.exists() else None
        procs = {}
        for name, rec in sorted(st.processes.items()):
            entry = {"pid": rec.pid, "alive": alive(rec), "ns": rec.ns, "kind": rec.kind}
            if rec.kind == "host" and entry["alive"]:
                entry["pss_bytes"] = pss_bytes(descendants(rec.pid)[1:])
            procs[name] = entry
        links = {}
        if plan is not None:
            for lk in plan.shaped_links:
                if net.ns_exists(lk.ns_b):
                    links[lk.name] = {
                        "inventory_mbps": lk.rate_mbps,
                        "shaped_mbps": net.shaped_rate(lk.ns_b, lk.if_b),
                        "up": "UP"
                        in net.run(
                            net.in_ns(lk.ns_b, ["ip", "-br", "link", "show", lk.if_b]), check=False
                        ).stdout,
                    }
        return {
            "up": st.exists(),
            "inventory": st.inventory,
            "run_dir": str(self.run_dir),
            "namespaces": {ns: net.ns_exists(ns) for ns in st.namespaces},
            "processes": procs,
            "links": links,
            "faults": st.faults,
            "skipped": plan.skipped if plan else {},
        }

    def host_pss(self) -> dict[str, int]:
        """Memory (PSS) of each running host's processes: systemd and everything under it."""
        st = self.state()
        return {
            rec.extra["host"]: pss_bytes(descendants(rec.pid)[1:])
            for rec in st.processes.values()
            if rec.kind == "host" and alive(rec)
        }

    def ansible_inventory(self) -> str:
        """An INI inventory of the lab hosts, reachable with the lab key (for tests and the rollout)."""
        lines = ["[lab]"]
        for h in self.plan.hosts.values():
            lines.append(f"{h.name} ansible_host={h.address}")
        lines += ["", "[lab:vars]", *ini_vars(connection_vars(self.ssh_key)),
                  "ansible_python_interpreter=/usr/bin/python3"]
        return "\n".join(lines) + "\n"
