"""Where a field came from: file and line, looked up only when a finding needs it.

Parsing keeps no line numbers (the C loader is several times faster that way, which is what
lets a 7,000-enterprise inventory validate in seconds); when a rule reports a field, the file
is composed once more into nodes and the field's path is walked to its line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hazmon.inventory.findings import FieldPath

try:
    from yaml import CSafeLoader as FastLoader
except ImportError:  # pragma: no cover - libyaml is in Debian's python3-yaml and the wheels
    from yaml import SafeLoader as FastLoader  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Origin:
    """A record's file, and where a sub-list of it lives in another file (a CSV tag table)."""

    file: Path
    # path prefix -> (csv file): rows of that list live in the CSV, header on line 1
    tables: tuple[tuple[FieldPath, Path], ...] = ()
    # where the record sits inside its file (province.yml wraps it in `province:`)
    prefix: FieldPath = ()


def _yaml_line(node: yaml.Node, path: FieldPath) -> int:
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


@dataclass
class SourceMap:
    """Resolves (origin, field path) to (file, line), composing each file at most once."""

    _nodes: dict[Path, yaml.Node | None] = field(default_factory=dict)

    def _node(self, file: Path) -> yaml.Node | None:
        if file not in self._nodes:
            try:
                self._nodes[file] = yaml.compose(file.read_text(encoding="utf-8"), Loader=FastLoader)
            except (OSError, yaml.YAMLError):
                self._nodes[file] = None
        return self._nodes[file]

    def locate(self, origin: Origin, path: FieldPath) -> tuple[Path, int | None]:
        for prefix, table in origin.tables:
            n = len(prefix)
            if path[:n] == prefix and len(path) > n and isinstance(path[n], int):
                return table, path[n] + 2  # header is line 1, row 0 is line 2
        node = self._node(origin.file)
        if node is None:
            return origin.file, None
        return origin.file, _yaml_line(node, (*origin.prefix, *path))


def read_yaml(file: Path) -> object:
    return yaml.load(file.read_text(encoding="utf-8"), Loader=FastLoader)


def read_tag_table(file: Path) -> list[dict[str, str]]:
    """Read a CSV tag table (位号表). Empty cells mean "use the default"."""
    with file.open(encoding="utf-8-sig", newline="") as fh:
        return [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
