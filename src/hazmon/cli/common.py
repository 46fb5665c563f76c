"""Small things every command family shares."""

from __future__ import annotations

import argparse
from pathlib import Path

INVENTORIES = Path("inventories")


def env_dir(env: str) -> Path:
    """An inventory given as a folder, or by name under ./inventories/."""
    path = Path(env)
    if path.is_dir() or "/" in env:
        return path
    return INVENTORIES / env


def json_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="machine-readable output")
    return parent
