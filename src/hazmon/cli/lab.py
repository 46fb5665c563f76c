"""`hazmon lab`: bring the lab up and down, look at it, reset hosts, inject faults."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hazmon.inventory.ansible import PROVINCE_BROKER_HOST
from hazmon.inventory.findings import InventoryError
from hazmon.lab.lab import DEFAULT_INVENTORY, Lab, LabError
from hazmon.lab.net import NetError
from hazmon.lab.plan import PlanError
from hazmon.lab.state import DEFAULT_STATE_DIR, LabState


def _lab(args: argparse.Namespace, inventory: Path | None = None) -> Lab:
    if inventory is None:
        # Commands other than `up` act on the lab that is up, whatever inventory it came from.
        recorded = LabState.load(args.run_dir).inventory
        inventory = Path(recorded) if recorded else DEFAULT_INVENTORY
    return Lab(inventory_root=inventory, run_dir=args.run_dir)


def _guard(fn):
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args) or 0
        except (LabError, InventoryError, NetError, PlanError) as exc:
            print(f"error: {exc}")
            return 2

    return wrapped


@_guard
def cmd_up(args: argparse.Namespace) -> int:
    timings = _lab(args, args.env).up()
    print(
        json.dumps(timings)
        if getattr(args, "json", False)
        else "lab up: " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items())
    )
    return 0


@_guard
def cmd_down(args: argparse.Namespace) -> int:
    problems = _lab(args).down()
    for p in problems:
        print(f"warning: {p}")
    print("lab down")
    return 0


@_guard
def cmd_status(args: argparse.Namespace) -> int:
    lab = _lab(args)
    st = lab.status()
    if getattr(args, "json", False):
        print(json.dumps(st, indent=1, ensure_ascii=False))
        return 0
    if not st["up"]:
        print("lab: down")
        return 1
    print(f"lab: up ({st['inventory']}, run dir {st['run_dir']})")
    for name, p in st["processes"].items():
        mem = f"  {p['pss_bytes'] / 2**20:.0f} MB" if "pss_bytes" in p else ""
        print(f"  {'ok  ' if p['alive'] else 'DEAD'} {name} pid {p['pid']}{mem}")
    for name, lk in st["links"].items():
        print(
            f"  link {name}: {'up' if lk['up'] else 'DOWN'} "
            f"{lk['shaped_mbps']:g}/{lk['inventory_mbps']:g} Mbit/s"
        )
    for key, what in st["faults"].items():
        print(f"  fault {key}: {what}")
    for code, why in st["skipped"].items():
        print(f"  skipped {code}: {why}")
    return 0 if all(p["alive"] for p in st["processes"].values()) else 1


def reset_targets(lab: Lab, hosts: list[str], enterprises: list[str], batches: list[int]) -> list[str]:
    """The host names `lab reset` acts on: those named, those of the enterprises, those of the batches."""
    names = list(hosts)
    try:
        for key in enterprises:
            names += [h.name for h in lab.plan.hosts_of(key)]
    except KeyError as exc:
        raise LabError(str(exc.args[0])) from None
    for batch in batches:
        found = lab.plan.hosts_of_batch(batch)
        if not found:
            raise LabError(f"batch {batch}: no enterprise of that batch has a host in the lab")
        names += [h.name for h in found]
    for name in names:
        lab.host(name)  # an unknown name is refused before anything is stopped
    if not names:
        raise LabError("name at least one HOST, --enterprise or --batch")
    return list(dict.fromkeys(names))


@_guard
def cmd_reset(args: argparse.Namespace) -> int:
    lab = _lab(args)
    names = reset_targets(lab, args.hosts, args.enterprise, args.batch)
    lab.reset_hosts(names)
    for name in names:
        print(f"{name}: reset (bare again)")
    if PROVINCE_BROKER_HOST in names:
        print(f"{PROVINCE_BROKER_HOST}: the broker is not configured any more; `hazmon lab up` configures it again")
    return 0


@_guard
def cmd_fault(args: argparse.Namespace) -> int:
    from hazmon.lab import faults

    lab = _lab(args)
    kind = args.fault
    if kind == "link-down":
        faults.link_down(lab, args.enterprise)
    elif kind == "link-up":
        faults.link_up(lab, args.enterprise)
    elif kind == "degrade":
        faults.degrade(lab, args.enterprise, args.rate)
    elif kind == "restore":
        faults.restore(lab, args.enterprise)
    elif kind == "dcs-stop":
        faults.dcs_command(lab, args.enterprise, "stop", args.source)
    elif kind == "dcs-resume":
        faults.dcs_command(lab, args.enterprise, "resume", args.source)
    elif kind in ("dcs-freeze", "dcs-unfreeze", "dcs-out-of-range"):
        cmd = {"dcs-freeze": "freeze", "dcs-unfreeze": "unfreeze", "dcs-out-of-range": "out_of_range"}[kind]
        faults.dcs_tag(lab, args.enterprise, cmd, args.tag)
    elif kind == "reboot":
        lab.reboot(args.host)
    print(f"fault {kind}: done")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("lab", help="the lab: a simulated slice of the province")
    p.add_argument("--run-dir", type=Path, default=DEFAULT_STATE_DIR, help="run state (default %(default)s)")
    sub = p.add_subparsers(dest="lab_command", required=True)
    up = sub.add_parser("up", help="bring the lab up (idempotent)")
    up.add_argument(
        "env", nargs="?", type=Path, default=DEFAULT_INVENTORY, help="inventory (default %(default)s)"
    )
    up.set_defaults(func=cmd_up)
    sub.add_parser("status", help="what runs, links, faults").set_defaults(func=cmd_status)
    sub.add_parser("down", help="stop everything and remove every trace").set_defaults(func=cmd_down)
    reset = sub.add_parser(
        "reset", help="make hosts bare again (wipe their overlays, boot them; several at once in parallel)"
    )
    reset.add_argument("hosts", nargs="*", metavar="HOST", help="lab host name, e.g. labe0001-daq")
    reset.add_argument(
        "--enterprise", action="append", default=[], metavar="SLUG", help="every host of the enterprise (repeatable)"
    )
    reset.add_argument(
        "--batch", action="append", default=[], type=int, metavar="N", help="every host of batch N (repeatable)"
    )
    reset.set_defaults(func=cmd_reset)

    fault = sub.add_parser("fault", help="inject or undo a fault")
    fsub = fault.add_subparsers(dest="fault", required=True)
    for name, helptext in (
        ("link-down", "cut the enterprise line"),
        ("link-up", "bring the line back"),
        ("restore", "line up at the inventory's rate"),
    ):
        fp = fsub.add_parser(name, help=helptext)
        fp.add_argument("enterprise", help="code, slug or name")
    fp = fsub.add_parser("degrade", help="shape the enterprise line to RATE Mbit/s")
    fp.add_argument("enterprise")
    fp.add_argument("rate", type=float, help="Mbit/s")
    for name in ("dcs-stop", "dcs-resume"):
        fp = fsub.add_parser(name, help=f"{name.split('-')[1]} the enterprise's DCS/GDS simulator(s)")
        fp.add_argument("enterprise")
        fp.add_argument("source", nargs="?", help="data source name (default: all)")
    for name in ("dcs-freeze", "dcs-unfreeze", "dcs-out-of-range"):
        fp = fsub.add_parser(name, help=f"{name[4:]} one tag")
        fp.add_argument("enterprise")
        fp.add_argument("tag")
    fp = fsub.add_parser("reboot", help="reboot a lab host (keeps what it wrote)")
    fp.add_argument("host")
    fault.set_defaults(func=cmd_fault)
