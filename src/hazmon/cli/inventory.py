"""`hazmon inventory ...`: validate, show, graph, readiness, export (and synth)."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from hazmon.cli.common import env_dir, json_parent
from hazmon.inventory.findings import Severity
from hazmon.inventory.loader import Inventory
from hazmon.inventory.readiness import Readiness
from hazmon.inventory.validate import validate

_STYLE = {Severity.ERROR: "bold red", Severity.BLOCKER: "yellow", Severity.WARNING: "dim"}


def register(sub: argparse._SubParsersAction) -> None:
    inv = sub.add_parser("inventory", help="the province's single source of truth")
    isub = inv.add_subparsers(dest="inventory_command", required=True)
    env_arg = argparse.ArgumentParser(add_help=False)
    env_arg.add_argument("env", nargs="?", default="lab", help="inventory folder or name under inventories/")

    p = isub.add_parser("validate", parents=[env_arg, json_parent()], help="check every rule of the notice")
    p.add_argument("--strict", action="store_true",
                   help="treat readiness blockers as errors (exit 1 when any enterprise is not ready)")
    p.set_defaults(func=cmd_validate)

    p = isub.add_parser("show", parents=[json_parent()], help="one enterprise, as the model sees it")
    p.add_argument("enterprise", help="unified code, slug (last 8 characters) or name")
    p.add_argument("env", nargs="?", default="lab")
    p.set_defaults(func=cmd_show)

    p = isub.add_parser("graph", parents=[env_arg], help="province -> cities -> enterprises -> devices")
    p.set_defaults(func=cmd_graph)

    p = isub.add_parser("readiness", parents=[env_arg, json_parent()],
                        help="enterprises by city, and what blocks each")
    p.add_argument("--batch", type=int, help="only this rollout batch")
    p.set_defaults(func=cmd_readiness)

    p = isub.add_parser("export", parents=[env_arg], help="the validated model, for machines")
    p.add_argument("--format", choices=["json"], default="json")
    p.set_defaults(func=cmd_export)

    from hazmon.cli import synth

    synth.register(isub)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _load(args: argparse.Namespace) -> tuple[Inventory, list[Readiness]]:
    return validate(env_dir(args.env))


def _print_findings(console: Console, inv: Inventory, strict: bool) -> None:
    for sev in (Severity.ERROR, Severity.BLOCKER, Severity.WARNING):
        found = inv.report.of(sev)
        if not found:
            continue
        title = {Severity.ERROR: "Errors", Severity.BLOCKER: "Readiness blockers",
                 Severity.WARNING: "Warnings"}[sev]
        if sev is Severity.BLOCKER and strict:
            title += " (--strict: counted as errors)"
        console.print(f"[{_STYLE[sev]}]{title} ({len(found)})[/]")
        for f in found:
            console.print(f"  {f.render(inv.root)}", style=_STYLE[sev], markup=False)


def cmd_validate(args: argparse.Namespace) -> int:
    inv, ready = _load(args)
    failing = bool(inv.report.errors) or (args.strict and bool(inv.report.blockers))
    if args.json:
        json.dump({
            "inventory": str(inv.root),
            "ok": not failing,
            "errors": [f.as_dict() for f in inv.report.errors],
            "blockers": [f.as_dict() for f in inv.report.blockers],
            "warnings": [f.as_dict() for f in inv.report.warnings],
            "enterprises": len(inv.enterprises),
            "ready": sum(1 for r in ready if r.ready),
        }, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 1 if failing else 0
    console = _console()
    _print_findings(console, inv, args.strict)
    n_ready = sum(1 for r in ready if r.ready)
    verdict = "[bold red]INVALID[/]" if failing else "[green]valid[/]"
    console.print(
        f"{inv.name}: {verdict}: {len(inv.cities)} cities, {len(inv.enterprises)} enterprises "
        f"({n_ready} ready), {len(inv.report.errors)} errors, {len(inv.report.blockers)} blockers, "
        f"{len(inv.report.warnings)} warnings"
    )
    if inv.report.errors:
        console.print("Nothing downstream (Ansible, lab, collector configs) runs until the errors are fixed.")
    return 1 if failing else 0


def cmd_show(args: argparse.Namespace) -> int:
    inv, ready = validate(env_dir(args.env))
    ent = inv.enterprise(args.enterprise)
    if ent is None:
        print(f"hazmon: no enterprise {args.enterprise!r} in {inv.root}", file=sys.stderr)
        return 2
    r = next(x for x in ready if x.enterprise is ent)
    data = ent.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["lifecycle"] = str(r.lifecycle)
    data["blocked_by"] = [f.as_dict() for f in r.blocking]
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    console = _console()
    console.print(f"[bold]{ent.name}[/] {ent.code}  city {ent.city}  batch {ent.batch}  "
                  f"lifecycle [bold]{r.lifecycle}[/]")
    for f in r.blocking:
        console.print(f"  blocked by {f.rule}: {f.message}", style="yellow", markup=False)
    import yaml

    console.print(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), markup=False)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    inv, ready = _load(args)
    life = {r.enterprise.code: r for r in ready}
    prov = inv.province
    root = Tree(f"[bold]{prov.name if prov else inv.name}[/] ({inv.name})")
    if prov:
        p = prov.platform
        root.add(f"platform: mqtt {p.mqtt.host}:{p.mqtt.port}, sip {p.sip.server_id}@{p.sip.host}:{p.sip.port}")
    for code, city in sorted(inv.cities.items()):
        up = city.uplink
        cnode = root.add(f"[bold]{code} {city.name}[/] uplink {up.contracted_mbps:g} Mbps"
                         + (f" (measured {up.measured_mbps:g})" if up.measured_mbps is not None else ""))
        parents: dict[str, Tree] = {}
        for ent in (e for e in inv.enterprises if e.city == code):
            parent = cnode
            if ent.route.via == "parent_company":
                name = ent.route.parent_company or "?"
                parent = parents.setdefault(name, cnode.add(f"via parent company {name} (S3)"))
            r = life[ent.code]
            colour = "green" if r.ready or r.lifecycle not in ("surveyed",) else "yellow"
            enode = parent.add(f"[{colour}]{escape(ent.name)}[/] {ent.code} {escape(f'[{r.lifecycle}]')} "
                               f"line {ent.line.measured_mbps or ent.line.contracted_mbps:g} Mbps")
            d = ent.devices
            for name in ("access_gateway", "daq_gateway", "ai_box"):
                box = getattr(d, name)
                if box is not None:
                    enode.add(f"{name} {box.address}")
            if d.switch is not None:
                enode.add(f"switch {d.switch.name} {d.switch.address} ({d.switch.device_type})")
            for nvr in d.nvrs:
                nnode = enode.add(f"NVR {nvr.name} {nvr.address} {nvr.vendor}")
                for cam in (c for c in ent.cameras if c.nvr == nvr.name):
                    nnode.add(f"ch{cam.channel} {cam.name} {cam.address} {cam.location}")
            for src in ent.data_sources:
                enode.add(f"source {src.name} {src.protocol} ({len(src.tags)} tags)")
    _console().print(root)
    return 0 if inv.report.ok else 1


def cmd_readiness(args: argparse.Namespace) -> int:
    inv, ready = _load(args)
    rows = [r for r in ready if args.batch is None or r.enterprise.batch == args.batch]
    if args.json:
        json.dump([{
            "enterprise": r.enterprise.code, "name": r.enterprise.name, "city": r.enterprise.city,
            "batch": r.enterprise.batch, "lifecycle": str(r.lifecycle), "ready": r.ready,
            "blocked_by": [f.as_dict() for f in r.blocking],
        } for r in rows], sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0 if inv.report.ok else 1
    console = _console()
    for code, city in sorted(inv.cities.items()):
        mine = [r for r in rows if r.enterprise.city == code]
        if not mine:
            continue
        table = Table(title=f"{code} {city.name}", title_justify="left")
        for col in ("enterprise", "code", "batch", "lifecycle", "blocked by"):
            table.add_column(col)
        for r in mine:
            blocked = "\n".join(f"{f.rule}: {f.message}" for f in r.blocking)
            style = "green" if r.ready else ("yellow" if r.lifecycle == "surveyed" else "")
            table.add_row(r.enterprise.name, r.enterprise.code, str(r.enterprise.batch or "-"),
                          str(r.lifecycle), blocked or "-", style=style)
        console.print(table)
    n = sum(1 for r in rows if r.ready)
    console.print(f"{n} of {len(rows)} enterprises ready")
    if inv.report.errors:
        console.print(f"[bold red]{len(inv.report.errors)} errors: run `hazmon inventory validate`[/]")
    return 0 if inv.report.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    inv, ready = _load(args)
    if not inv.report.ok:
        for f in inv.report.errors:
            print(f.render(inv.root), file=sys.stderr)
        print("hazmon: the inventory is invalid; nothing exported", file=sys.stderr)
        return 1
    life = {r.enterprise.code: r for r in ready}
    out = {
        "province": inv.province.model_dump(mode="json") if inv.province else None,
        "cities": {c: city.model_dump(mode="json") for c, city in inv.cities.items()},
        "enterprises": [
            {**e.model_dump(mode="json", by_alias=True), "lifecycle": str(life[e.code].lifecycle),
             "blocked_by": sorted({f.rule for f in life[e.code].blocking})}
            for e in inv.enterprises
        ],
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


__all__ = ["register"]
