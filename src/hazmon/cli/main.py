"""The `hazmon` command: thin over the packages; each command family registers itself."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add a command family: each has register(subparsers) and sets args.func.
COMMAND_MODULES = ("inventory", "tables", "lab", "rollout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hazmon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"hazmon.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"hazmon.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
