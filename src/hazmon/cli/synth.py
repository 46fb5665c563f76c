"""`hazmon inventory synth`: write a synthetic national-scale inventory (valid by construction)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hazmon.inventory.synth import SynthError, generate


def register(inventory_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `synth` to the `hazmon inventory` family (called by hazmon.cli.inventory)."""
    p = inventory_subparsers.add_parser(
        "synth",
        help="write a synthetic national-scale inventory",
        description=__doc__,
    )
    p.add_argument("--enterprises", type=int, default=7000, help="how many enterprises (default 7000)")
    p.add_argument("--out", type=Path, required=True, help="folder to write province.yml and cities/ into")
    p.add_argument("--seed", type=int, default=1, help="random seed: same seed, same inventory")
    p.add_argument("--force", action="store_true", help="replace an inventory already in --out")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        stats = generate(args.out, args.enterprises, args.seed, args.force)
    except SynthError as exc:
        print(f"hazmon inventory synth: {exc}", file=sys.stderr)
        return 2
    took = time.perf_counter() - started
    summary = {
        "out": str(args.out), "enterprises": stats.enterprises, "hazard_sources": stats.hazard_sources,
        "tags": stats.tags, "nvrs": stats.nvrs, "cameras": stats.cameras, "blocked": stats.blocked,
        "protocols": dict(stats.protocols), "programmes": dict(stats.programmes),
        "cities": len(stats.cities), "seconds": round(took, 2),
    }
    if getattr(args, "json", False):
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"wrote {stats.enterprises} enterprises, {stats.hazard_sources} hazard sources, {stats.tags} tags "
              f"over {len(stats.cities)} cities to {args.out} in {took:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m hazmon.cli.synth ...), the same arguments as the subcommand."""
    parser = argparse.ArgumentParser(prog="hazmon inventory")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
