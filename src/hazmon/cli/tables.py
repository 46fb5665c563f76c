"""`hazmon tables`: the notice's survey tables (R3) as XLSX, out of and back into the inventory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hazmon.cli.common import env_dir, json_parent
from hazmon.inventory.findings import InventoryError

if TYPE_CHECKING:
    from hazmon.tables.importer import Problem

DEFAULT_ENV = "lab"
EXIT_REFUSED = 1  # the workbook has bad cells: nothing was written
EXIT_UNUSABLE = 2  # the inventory is invalid or the file is no survey workbook


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tables", help="survey tables (附件3, 6-10) as one XLSX workbook per city")
    sub = parser.add_subparsers(dest="tables_command", required=True)

    exp = sub.add_parser("export", parents=[json_parent()], help="write one workbook per city")
    exp.add_argument("env_dir", nargs="?", default=DEFAULT_ENV, metavar="ENV_DIR",
                     help=f"inventory folder or name under inventories/ (default {DEFAULT_ENV})")
    exp.add_argument("--out", type=Path, help="output folder (default out/tables/<env>)")
    exp.set_defaults(func=_export)

    imp = sub.add_parser("import", parents=[json_parent()],
                         help="apply a city's workbook to the inventory, or refuse it whole")
    imp.add_argument("workbook", type=Path, metavar="WORKBOOK")
    imp.add_argument("--into", default=DEFAULT_ENV, metavar="ENV_DIR",
                     help=f"inventory folder or name under inventories/ to update (default {DEFAULT_ENV})")
    imp.add_argument("--accept-blockers", action="store_true",
                     help="record changes that leave an enterprise not ready (e.g. V1, N2): the table "
                          "reports a real site condition")
    imp.add_argument("--dry-run", action="store_true", help="check and list the changes, write nothing")
    imp.set_defaults(func=_import)


def _export(args: argparse.Namespace) -> int:
    from hazmon.tables.export import export_workbooks

    root = env_dir(args.env_dir)
    out = args.out or Path("out") / "tables" / root.resolve().name
    try:
        done = export_workbooks(root, out)
    except InventoryError as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNUSABLE
    if args.json:
        print(json.dumps([{"city": d.city, "path": str(d.path), "rows": d.rows} for d in done],
                         ensure_ascii=False, indent=2))
    else:
        for d in done:
            counts = ", ".join(f"{name} {n}" for name, n in d.rows.items())
            print(f"{d.path}  ({counts})")
    return 0


def _import(args: argparse.Namespace) -> int:
    from hazmon.tables.importer import WorkbookError, import_workbook

    try:
        out = import_workbook(args.workbook, env_dir(args.into), accept_blockers=args.accept_blockers,
                              dry_run=args.dry_run)
    except (InventoryError, WorkbookError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNUSABLE
    if args.json:
        print(json.dumps({
            "applied": out.applied,
            "problems": [_problem_json(p) for p in out.problems],
            "warnings": [_problem_json(p) for p in out.warnings],
            "changes": [{"enterprise": c.code, "field": ".".join(map(str, c.path)), "value": str(c.value),
                         "cell": c.cell} for c in out.changes],
            "files": [str(f) for f in out.files],
            "created": out.created,
            "skipped_sheets": out.skipped_sheets,
        }, ensure_ascii=False, indent=2))
    else:
        for p in out.warnings:
            print(f"warning: {p.render()}")
        for name in out.skipped_sheets:
            print(f"note: no sheet {name} in the workbook: nothing imported from it")
        if out.problems:
            for p in out.problems:
                print(p.render(), file=sys.stderr)
            print(f"refused: {len(out.problems)} problem(s); the inventory was not changed", file=sys.stderr)
        else:
            for c in out.changes:
                value = "(removed)" if c.value is None else c.value
                print(f"{c.cell}: {c.code} {'.'.join(map(str, c.path))} = {value}")
            verb = "applied" if out.applied else "would apply (dry run)"
            print(f"{verb}: {len(out.changes)} change(s) in {len(out.files)} file(s), "
                  f"{len(out.created)} enterprise(s) created")
    return EXIT_REFUSED if out.problems else 0


def _problem_json(problem: Problem) -> dict[str, str]:
    return {"where": problem.where, "rule": problem.rule, "message": problem.message}
