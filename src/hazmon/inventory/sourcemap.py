"""Where a field came from: file and line, looked up only when a finding needs it.

Parsing keeps no line numbers (the C loader is several times faster that way, which is what
lets a 7,000-enterprise inventory validate in seconds); when a rule reports a field, the file
is composed once more into nodes and the field's path is walked to its line.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from sys import intern

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hazmon.inventory.files import (
    MAX_ALIAS_VALUES,
    MAX_CELL_CHARS,
    MAX_DEPTH,
    FileProblem,
    Problem,
    decode_table,
    decode_yaml,
    problem,
    read_bytes,
)
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

    What the inventory refuses is noted on the way, at next to no cost, for checked_data(): a
    mapping that gave fewer keys than it holds (a duplicate key), and whether a value was reached
    twice (an alias). Nesting deeper than MAX_DEPTH, and a scalar its type cannot hold (a 30th of
    February), raise a FileProblem with the line.
    """

    def __init__(self, stream):  # type: ignore[no-untyped-def]
        super().__init__(stream)
        # Mappings whose keys are not all distinct, with their key nodes as written.
        self.duplicates: list[tuple[MappingNode, list[Node]]] = []
        self.aliases: list[tuple[Node, int]] = []  # (node built again, depth where) per alias met
        self.fallback = False  # PyYAML built the document: aliases are not known one by one

    def resolve(self, kind, value, implicit):  # type: ignore[no-untyped-def]
        if kind is ScalarNode and implicit[0] and not implicit[1]:
            return _implicit_tag(value)
        return super().resolve(kind, value, implicit)

    def descend_resolver(self, current_node, current_index):  # type: ignore[no-untyped-def]
        return None  # SafeLoader has no path resolvers

    def ascend_resolver(self):  # type: ignore[no-untyped-def]
        return None

    def _build(self, node: Node, memo: dict[int, object], depth: int) -> object:
        tag = node.tag
        if tag == _STR and type(node) is ScalarNode:
            return node.value
        done = memo.get(id(node))
        if done is not None:
            self.aliases.append((node, depth))
            return done  # an alias: the same object, as PyYAML gives
        if tag == _MAP and type(node) is MappingNode:
            if depth >= MAX_DEPTH:
                raise _too_deep(node)
            out: dict[object, object] = {}
            memo[id(node)] = out
            for key_node, value_node in node.value:
                if type(key_node) is not ScalarNode or key_node.tag not in _FAST_KEY_TAGS:
                    raise _Fallback
                key = self._build(key_node, memo, depth)
                # Interned keys are one object per name, which the parse cache's marshal stores
                # once and reads back as references: a third less to read.
                out[intern(key) if type(key) is str else key] = self._build(value_node, memo, depth + 1)
            if len(out) != len(node.value):
                self.duplicates.append((node, [k for k, _ in node.value]))
            return out
        if tag == _SEQ and type(node) is SequenceNode:
            if depth >= MAX_DEPTH:
                raise _too_deep(node)
            seq: list[object] = []
            memo[id(node)] = seq
            seq.extend(self._build(child, memo, depth + 1) for child in node.value)
            return seq
        if tag in _SCALARS and type(node) is ScalarNode:
            try:
                return self.yaml_constructors[tag](self, node)
            except (ValueError, OverflowError) as exc:
                raise _bad_scalar(node, exc) from None
        raise _Fallback

    def construct_document(self, node):  # type: ignore[no-untyped-def]
        try:
            return self._build(node, {}, 0)
        except _Fallback:
            pass
        # PyYAML builds recursively: measure first, so that nesting cannot exhaust the stack.
        self.duplicates.clear()
        self.aliases.clear()
        self.fallback = True
        sizes = _Sizes()
        if sizes.measure(node) is None and sizes.height(node) > MAX_DEPTH:
            raise _too_deep(node)
        return super().construct_document(node)

    def construct_object(self, node, deep=False):  # type: ignore[no-untyped-def]
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise _bad_scalar(node, exc) from None

    def flatten_mapping(self, node):  # type: ignore[no-untyped-def]
        # PyYAML's own mapping construction (the fallback): explicit keys must be distinct; a
        # merge key (<<) may be overridden, that is what it is for.
        # (Before flattening: merged keys then join node.value, and may repeat explicit ones.)
        keys = [k for k, _ in node.value if type(k) is ScalarNode and k.tag != _MERGE]
        if len({(k.tag, k.value) for k in keys}) != len(keys) and all(node is not d for d, _ in self.duplicates):
            self.duplicates.append((node, keys))
        super().flatten_mapping(node)

    def checked_data(self) -> object:
        """The document, or a FileProblem for what the inventory refuses (duplicate keys, aliases
        that repeat too much or refer to themselves, nesting too deep)."""
        node = self.get_single_node()
        if node is None:
            return None
        data = self.construct_document(node)
        problems: list[Problem] = []
        if self.aliases or self.fallback:
            problems.extend(self._alias_problems(node))
        if self.duplicates:
            problems.extend(_duplicate_problems(node, self.duplicates))
        if problems:
            raise FileProblem(*problems)
        return data

    def _alias_problems(self, root: Node) -> list[Problem]:
        """What aliases do to the document: refer to themselves, nest it too deep, or repeat too much.
        Only the aliased values are measured (a few small lists in the usual file), each node once."""
        sizes = _Sizes()
        if self.fallback:  # PyYAML built it: measure the whole document
            cycle = sizes.measure(root)
            height, expanded = sizes.of.get(id(root), (0, 0))
            repeated, biggest = expanded - len(sizes.of), root
        else:
            cycle, height, repeated, biggest, most = None, 0, 0, root, -1
            for target, depth in self.aliases:
                cycle = cycle or sizes.measure(target)
                if cycle is not None:
                    break
                h, values = sizes.of[id(target)]
                height = max(height, depth + h)
                repeated = min(_CAP, repeated + values)
                if values > most:
                    biggest, most = target, values
        if cycle is not None:
            return [Problem("an alias (*name) refers to a value that contains it: the value would be endless",
                            _line(cycle))]
        if height > MAX_DEPTH:
            return [Problem(f"values are nested more than {MAX_DEPTH} levels deep (aliases followed); an "
                            "inventory needs a handful", _line(root))]
        if repeated > MAX_ALIAS_VALUES:
            return [Problem(f"aliases (*name) repeat {repeated:,} values, the value anchored here among them; at "
                            f"most {MAX_ALIAS_VALUES:,} are allowed: write the values out, or alias less",
                            _line(biggest))]
        return []


_MERGE = "tag:yaml.org,2002:merge"


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _too_deep(node: Node) -> FileProblem:
    return problem(f"values are nested more than {MAX_DEPTH} levels deep; an inventory needs a handful",
                   _line(node))


def _bad_scalar(node: Node, exc: Exception) -> FileProblem:
    kind = str(node.tag).rsplit(":", 1)[-1]
    text = node.value if isinstance(node.value, str) else ""
    shown = text if len(text) <= 40 else text[:37] + "..."
    words = {"timestamp": "a date", "int": "an integer", "float": "a number"}.get(kind, f"a {kind}")
    why = str(exc)
    if kind == "int" and len(text) > 1000:
        why = f"{len(text):,} digits are too many"
    elif why.startswith("offset must be"):
        why = "a time zone offset lies within 24 hours"
    return problem(f"{shown!r} is not {words}: {why}", _line(node))


_CAP = 1 << 62  # alias expansion grows geometrically: past any limit, its exact size does not matter


def _children(node: Node) -> list[Node]:
    if type(node) is MappingNode:
        return [n for pair in node.value for n in pair]
    if type(node) is SequenceNode:
        return node.value  # type: ignore[no-any-return]
    return []


@dataclass
class _Sizes:
    """Height and value count (aliases expanded) of composed nodes, found without recursion and
    without expanding anything: each node is visited once, however often aliases repeat it."""

    of: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (height, values)

    def height(self, node: Node) -> int:
        return self.of[id(node)][0]

    def measure(self, start: Node) -> Node | None:
        """Size `start` and everything under it; a node that contains itself, if one does."""
        of = self.of
        open_: set[int] = set()  # the nodes on the current path: met again, they are a cycle
        stack: list[tuple[Node, bool]] = [(start, False)]
        while stack:
            node, finished = stack.pop()
            key = id(node)
            if finished:
                kids = _children(node)
                height = 1 + max((of[id(k)][0] for k in kids), default=0)
                of[key] = (height, min(_CAP, 1 + sum(of[id(k)][1] for k in kids)))
                open_.discard(key)
                continue
            if key in of:
                continue
            if key in open_:
                return node
            open_.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
        return None


def _path_to(root: Node, target: Node) -> FieldPath:
    """The field path of `target` in the document (breadth first, each node once)."""
    seen = {id(root)}
    queue: list[tuple[Node, FieldPath]] = [(root, ())]
    for node, path in queue:
        if node is target:
            return path
        if type(node) is MappingNode:
            items = [(k.value if type(k) is ScalarNode else "?", v) for k, v in node.value]
        elif type(node) is SequenceNode:
            items = list(enumerate(node.value))
        else:
            continue
        for part, child in items:
            if id(child) not in seen:
                seen.add(id(child))
                queue.append((child, (*path, part)))
    return ()


def _duplicate_problems(root: Node, mappings: list[tuple[MappingNode, list[Node]]]) -> list[Problem]:
    out = []
    for mapping, keys in mappings:
        path = _path_to(root, mapping)
        first: dict[str, Node] = {}
        found = False
        for key_node in keys:
            if type(key_node) is not ScalarNode or key_node.tag == _MERGE:
                continue
            text = key_node.value
            if text in first:
                found = True
                out.append(Problem(f"key {text!r} appears twice in this mapping (lines {_line(first[text])} and "
                                   f"{_line(key_node)}): the later would silently replace the earlier; keep one",
                                   _line(key_node), (*path, text)))
            else:
                first[text] = key_node
        if not found:  # equal values written differently (1 and 0x1, true and 1)
            out.append(Problem("two keys of this mapping have the same value: the later would silently replace "
                               "the earlier; keep one", _line(mapping), path))
    return out


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
                self._nodes[file] = yaml.compose(decode_yaml(read_bytes(file)), Loader=FastLoader)
            except (FileProblem, yaml.YAMLError):
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
    """An inventory YAML file's content; FileProblem or yaml.YAMLError when it cannot be taken."""
    text = decode_yaml(read_bytes(file))
    try:
        loader = FastLoader(text)
        try:
            return loader.checked_data()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: no mark, a UTF-8 byte offset
        line = text.encode("utf-8", "surrogatepass").count(b"\n", 0, max(exc.position, 0)) + 1
        raise problem(f"the file holds the character U+{exc.character:04X}, which YAML does not allow (a control "
                      "character, or a noncharacter): remove it", line) from None


def read_tag_table(file: Path) -> list[dict[str, str]]:
    """Read a CSV tag table (位号表). Empty cells mean "use the default". FileProblem when it cannot
    be taken (encoding, a repeated column, a cell beyond MAX_CELL_CHARS, a broken quote...)."""
    text = decode_table(read_bytes(file))
    reader = csv.reader(io.StringIO(text, newline=""))
    # The cell bound, checked row by row only when a cell could break it: an unquoted cell lies
    # within one line (the usual table: a few KB, no quotes, short lines).
    check_cells = len(text) > MAX_CELL_CHARS and ('"' in text or max(map(len, text.split("\n"))) > MAX_CELL_CHARS)
    try:
        header = next(reader, None)
        if header is None:
            return []
        if check_cells and max(map(len, header), default=0) > MAX_CELL_CHARS:
            raise _huge_cell(reader.line_num)
        _check_header(header)
        # The same rows as DictReader (blank lines skipped, extra cells under the key None),
        # without its per-row Python overhead: 440,000 tags read in a third of the time.
        width = len(header)
        out = []
        for row in reader:
            if not row:
                continue
            if check_cells and max(map(len, row)) > MAX_CELL_CHARS:
                raise _huge_cell(reader.line_num)
            # Cells repeat (kinds, units, hazard sources): interned, the parse cache stores each once.
            cells = {k: intern(v) for k, v in zip(header, row, strict=False) if v}
            if len(row) > width:
                cells[None] = row[width:]  # type: ignore[index]
            out.append(cells)
        return out
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):  # csv's own bound, above ours
            raise _huge_cell(reader.line_num) from None
        raise problem(f"the file is not valid CSV: {exc}", reader.line_num or None) from None


def _huge_cell(line: int) -> FileProblem:
    return problem(f"a cell holds more than {MAX_CELL_CHARS:,} characters; a tag table's cells are codes, numbers, "
                   "units and node IDs", line)


def _check_header(header: list[str]) -> None:
    if len(header) == 1 and ("\t" in header[0] or ";" in header[0]):
        sep = "tabs" if "\t" in header[0] else "semicolons"
        raise problem(f"the header is separated by {sep}: save the tag table as CSV (comma-separated)", 1)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise problem(f"column {name!r} appears twice in the header: the later would silently replace the "
                          "earlier; keep one", 1)
        seen.add(name)
