"""Where a field came from: file and line, looked up only when a finding needs it.

Parsing keeps no line numbers (the C loader is several times faster that way, which is what
lets a 7,000-enterprise inventory validate in seconds); when a rule reports a field, the file
is composed once more into nodes and the field's path is walked to its line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from sys import intern

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hazmon.inventory.findings import FieldPath
from hazmon.inventory.parsecache import ParseCache

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - libyaml is in Debian's python3-yaml and the wheels
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Plain-scalar tags whose SafeConstructor functions are plain functions of the scalar (no generator).
_SCALARS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "null", "timestamp"))


@lru_cache(maxsize=1 << 16)
def _implicit_tag(value: str) -> str:
    """The tag SafeLoader's implicit resolvers give a plain scalar (a pure function of its text)."""
    # resolve() only reads class attributes, so the class itself serves as `self`.
    return _BaseLoader.resolve(_BaseLoader, ScalarNode, value, (True, False))


class _Fallback(Exception):
    """The document uses something the fast constructor leaves to PyYAML (merge keys, !!set, ...)."""


class FastLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """CSafeLoader with the per-node Python overhead taken out; results are identical.

    Profiling a 7,000-enterprise inventory showed most of the YAML time in PyYAML's Python side:
    the implicit resolver runs its regexes for every scalar (memoised here: SafeLoader has no path
    resolvers, so the tag is a function of the text alone), and construct_object's bookkeeping
    per node (replaced by a direct walk for plain maps, sequences and scalars). Anything else in
    a document (merge keys, complex keys, explicit tags such as !!set) falls back to PyYAML.
    """

    def resolve(self, kind, value, implicit):  # type: ignore[no-untyped-def]
        if kind is ScalarNode and implicit[0] and not implicit[1]:
            return _implicit_tag(value)
        return super().resolve(kind, value, implicit)

    def descend_resolver(self, current_node, current_index):  # type: ignore[no-untyped-def]
        return None  # SafeLoader has no path resolvers

    def ascend_resolver(self):  # type: ignore[no-untyped-def]
        return None

    def _build(self, node: Node, memo: dict[int, object]) -> object:
        tag = node.tag
        if tag == _STR and type(node) is ScalarNode:
            return node.value
        done = memo.get(id(node))
        if done is not None:
            return done  # an alias: the same object, as PyYAML gives
        if tag == _MAP and type(node) is MappingNode:
            out: dict[object, object] = {}
            memo[id(node)] = out
            for key_node, value_node in node.value:
                if type(key_node) is not ScalarNode or key_node.tag not in _FAST_KEY_TAGS:
                    raise _Fallback
                key = self._build(key_node, memo)
                # Interned keys are one object per name, which the parse cache's marshal stores
                # once and reads back as references: a third less to read.
                out[intern(key) if type(key) is str else key] = self._build(value_node, memo)
            return out
        if tag == _SEQ and type(node) is SequenceNode:
            seq: list[object] = []
            memo[id(node)] = seq
            seq.extend(self._build(child, memo) for child in node.value)
            return seq
        if tag in _SCALARS and type(node) is ScalarNode:
            return self.yaml_constructors[tag](self, node)
        raise _Fallback

    def construct_document(self, node):  # type: ignore[no-untyped-def]
        try:
            return self._build(node, {})
        except _Fallback:
            return super().construct_document(node)


# Keys the fast walk builds itself: merge keys ("<<") and unusual keys go to PyYAML.
_FAST_KEY_TAGS = frozenset({_STR} | _SCALARS)


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
    # Remembers the lookups of unchanged files across runs (composing a file is the slow part).
    cache: ParseCache | None = None

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
        where = (*origin.prefix, *path)
        known = self.cache.lines(origin.file) if self.cache is not None else None
        if known is not None and where in known:
            return origin.file, known[where]
        node = self._node(origin.file)
        line = None if node is None else _yaml_line(node, where)
        if known is not None and node is not None:
            self.cache.note_line(origin.file, where, line)  # type: ignore[union-attr]
        return origin.file, line


def read_yaml(file: Path) -> object:
    return yaml.load(file.read_text(encoding="utf-8"), Loader=FastLoader)


def read_tag_table(file: Path) -> list[dict[str, str]]:
    """Read a CSV tag table (位号表). Empty cells mean "use the default"."""
    with file.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        if len(set(header)) != len(header):
            # Repeated column names: let DictReader decide which cell wins, as it always did.
            fh.seek(0)
            return [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]
        # The same rows as DictReader (blank lines skipped, extra cells under the key None),
        # without its per-row Python overhead: 440,000 tags read in a third of the time.
        width = len(header)
        out = []
        for row in reader:
            if not row:
                continue
            # Cells repeat (kinds, units, hazard sources): interned, the parse cache stores each once.
            cells = {k: intern(v) for k, v in zip(header, row, strict=False) if v}
            if len(row) > width:
                cells[None] = row[width:]  # type: ignore[index]
            out.append(cells)
        return out
