"""Edit enterprise YAML files in place, keeping their comments and layout (ruamel round trip)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

Path_ = tuple[str | int, ...]


def yaml_rt() -> YAML:
    """The round-trip dumper, set to the inventory's style: 2-space maps, `  - ` lists."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    # One flow mapping per line as the files write them; a narrower width would fold them.
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load(text: str) -> Any:
    return yaml_rt().load(text)


def dump(doc: Any) -> str:
    out = io.StringIO()
    yaml_rt().dump(doc, out)
    return out.getvalue()


def _native(value: Any) -> Any:
    """Lists go in flow style (`[a, b]`), as the inventory writes its short lists; digit strings
    (city codes, GB/T 28181 IDs) in double quotes, as the inventory writes them."""
    if isinstance(value, str) and value.isdigit():
        return DoubleQuotedScalarString(value)
    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def set_in(doc: Any, path: Path_, value: Any) -> None:
    """Set the field at `path`, creating mappings on the way; None removes the field."""
    node = doc
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(node, list):
            assert isinstance(part, int)
            if part == len(node):
                node.append(CommentedMap())
            node = node[part]
            continue
        if node.get(part) is None:
            if value is None:
                return  # removing a field under a record that is not there: nothing to do
            node[part] = CommentedSeq() if isinstance(nxt, int) else CommentedMap()
        node = node[part]
    last = path[-1]
    if isinstance(node, list):
        assert isinstance(last, int)
        if last == len(node):
            node.append(_native(value))
        else:
            node[last] = _native(value)
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = _native(value)


def order_like(doc: CommentedMap, keys: list[str]) -> CommentedMap:
    """A new record's keys in the model's field order, so a created file reads like a written one."""
    out = CommentedMap()
    for key in keys:
        if key in doc:
            out[key] = doc[key]
    for key in doc:
        if key not in out:
            out[key] = doc[key]
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
