"""A parse cache for inventory files, as ruff and mypy keep one: an unchanged file is never re-parsed.

Validating a 7,000-enterprise inventory spent about 7 s turning YAML and CSV text into dicts and
lists. The parsed content of every file is kept in one marshal file per inventory folder
(~/.cache/hazmon/parse/<digest of the folder>.marshal, or under $HAZMON_CACHE_DIR), with the
file's (mtime_ns, size, inode) when it was read; marshal reads plain dicts, lists, strings and
numbers back several times faster than pickle, and than any parser. The line numbers findings
asked for (sourcemap.SourceMap) are kept beside each file's content, so an unchanged file is not
composed again either.

Validity: an entry is used only while its file's (mtime_ns, size, inode) is unchanged, and the
whole cache only while the hazmon version and the parsing code (this module, sourcemap.py,
files.py: the bounds and encodings a file is read with) are the same. A file that cannot be taken
(a parse error, a bound exceeded) is never stored, and any entry it had is dropped: the next load
reads it again, and sees a fix at once. An entry this code did not write (a damaged cache file) is
a miss. A file modified less than RACY_SECONDS before it was read is not stored ("racily clean",
as git calls it): file systems stamp mtimes with a coarse clock, so a same-size edit within that
window could otherwise go unseen. Contents that marshal cannot hold as they are (YAML dates) are
stored with the dates as ISO text and their paths, and turned back into the same date objects.
Anything else unusual (a failed parse, an unmarshallable value) is simply not cached.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import marshal
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import hazmon

# Bump when the layout of the cache file changes.
FORMAT = 1
RACY_SECONDS = 2.0
CACHE_ENV = "HAZMON_CACHE_DIR"  # where caches live (default ~/.cache/hazmon); "" or "off" disables
_MAX_DATES = 10_000
# Inventory folders whose cache is kept (test suites validate many temporary copies): beyond this,
# the least recently written go.
MAX_FOLDERS = 32  # beyond this, restoring dates would cost more than parsing: do not cache

Stamp = tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino)
LinePath = tuple[object, ...]


def cache_root() -> Path | None:
    """Folder of hazmon's caches, or None when caching is switched off."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "no") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hazmon"


def _code_stamp() -> str:
    """The hazmon version and the parsing code's own stamps: other code, other cache."""
    parts = [str(FORMAT), hazmon.__version__]
    here = Path(__file__).parent
    for name in ("parsecache.py", "sourcemap.py", "files.py"):
        try:
            st = (here / name).stat()
        except OSError:
            continue
        parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    return "\0".join(parts)


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _encode_dates(data: object) -> tuple[object, list[tuple[LinePath, str]]] | None:
    """A copy of `data` with dates as ISO text, and where they were; None if not plain data."""
    found: list[tuple[LinePath, str]] = []

    def walk(obj: object, path: LinePath) -> object:
        kind = type(obj)
        if kind is dict:
            return {k: walk(v, (*path, k)) for k, v in obj.items()}  # type: ignore[union-attr]
        if kind is list:
            return [walk(v, (*path, i)) for i, v in enumerate(obj)]  # type: ignore[arg-type]
        if kind is dt.date or kind is dt.datetime:
            if len(found) >= _MAX_DATES or not path:
                raise ValueError("too many dates, or a document that is a date")
            found.append((path, kind.__name__))
            return obj.isoformat()  # type: ignore[union-attr]
        return obj

    try:
        copy = walk(data, ())
        marshal.dumps(copy)
    except (ValueError, RecursionError):
        return None
    return copy, found


def _decode_dates(data: object, dates: list[tuple[LinePath, str]]) -> object:
    for path, kind in dates:
        parent = data
        for part in path[:-1]:
            parent = parent[part]  # type: ignore[index]
        text = parent[path[-1]]  # type: ignore[index]
        parent[path[-1]] = (dt.datetime if kind == "datetime" else dt.date).fromisoformat(text)  # type: ignore[index]
    return data


@dataclass
class ParseCache:
    """Parsed content of one inventory folder's files: load() it, get/put, then save().

    Each entry holds its content as marshal bytes: get() hands out fresh objects (the loader
    changes them: tag tables are inlined) while the bytes stay as parsed, ready to be saved again.
    """

    file: Path | None  # None: caching off (get always misses, save does nothing)
    # path -> (stamp, marshal bytes of the content, dates in it, remembered line lookups)
    entries: dict[str, tuple[Stamp, bytes, list, dict]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    noted: set[str] = field(default_factory=set)  # files whose line lookups grew this run
    # Parsed this run by worker processes (parallel.py), used by get() once and not counted as hits.
    fresh: dict[str, tuple[Stamp, bytes]] = field(default_factory=dict)
    # Stamps taken by prefetch this run, so that each file is stat'ed once (taken by the loader).
    stamps: dict[str, Stamp] = field(default_factory=dict)
    dirty: bool = False
    hits: int = 0
    misses: int = 0

    @classmethod
    def for_root(cls, root: Path) -> ParseCache:
        base = cache_root()
        if base is None:
            return cls(None)
        digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:24]
        cache = cls(base / "parse" / f"{digest}.marshal")
        cache.load()
        return cache

    def load(self) -> None:
        if self.file is None:
            return
        try:
            raw = marshal.loads(self.file.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return  # absent or unreadable: start empty (it is only a cache)
        if isinstance(raw, tuple) and len(raw) == 2 and raw[0] == _code_stamp() and isinstance(raw[1], dict):
            self.entries = raw[1]

    def get(self, path: Path, stamp: Stamp) -> tuple[bool, object]:
        """(True, content) when `path` is cached with this stamp; the content is the caller's own."""
        try:
            return self._get(path, stamp)
        except (TypeError, ValueError, IndexError, KeyError, EOFError):
            # An entry this code did not write (a damaged cache file): a miss, and gone.
            if self.entries.pop(str(path), None) is not None:
                self.misses += 1
                self.dirty = True
            self.fresh.pop(str(path), None)
            return False, None

    def _get(self, path: Path, stamp: Stamp) -> tuple[bool, object]:
        key = str(path)
        entry = self.entries.get(key)
        if entry is None or tuple(entry[0]) != stamp:
            self.misses += 1
            parsed = self.fresh.pop(key, None)
            if parsed is None or parsed[0] != stamp:
                return False, None
            self._store(key, stamp, parsed[1])
            return True, marshal.loads(parsed[1])
        data = marshal.loads(entry[1])
        data = _decode_dates(data, entry[2]) if entry[2] else data
        self.hits += 1
        self.used.add(key)
        return True, data

    def wants(self, path: Path, stamp: Stamp) -> bool:
        """True when `path` with this stamp is not cached (a parallel parse would pay)."""
        key = str(path)
        entry = self.entries.get(key)
        parsed = self.fresh.get(key)
        return (self.file is not None and (entry is None or tuple(entry[0]) != stamp)
                and (parsed is None or parsed[0] != stamp))

    def _store(self, key: str, stamp: Stamp, blob: bytes) -> None:
        self.used.add(key)
        self.dirty = True
        if stamp[0] > (time.time() - RACY_SECONDS) * 1e9:
            self.entries.pop(key, None)
        else:
            self.entries[key] = (stamp, blob, [], {})

    def put(self, path: Path, stamp: Stamp, content: object) -> None:
        """Remember `content` (call before changing it) unless the file is racily new."""
        if self.file is None:
            return
        key = str(path)
        self.used.add(key)
        self.dirty = True
        if stamp[0] > (time.time() - RACY_SECONDS) * 1e9:
            self.entries.pop(key, None)
            return
        try:
            self.entries[key] = (stamp, marshal.dumps(content), [], {})
            return
        except ValueError:
            pass  # dates, or something stranger: the slower walk below decides
        encoded = _encode_dates(content)
        if encoded is None:
            self.entries.pop(key, None)
            return
        self.entries[key] = (stamp, marshal.dumps(encoded[0]), encoded[1], {})

    def forget(self, path: Path) -> None:
        """`path` could not be read or parsed: drop any entry (errors are not cached)."""
        if self.entries.pop(str(path), None) is not None:
            self.dirty = True

    def lines(self, path: Path) -> dict[LinePath, int | None] | None:
        """The remembered (field path -> line) lookups of a cached `path`, for SourceMap."""
        key = str(path)
        entry = self.entries.get(key)
        return entry[3] if entry is not None and key in self.used else None

    def note_line(self, path: Path, where: LinePath, line: int | None) -> None:
        lines = self.lines(path)
        if lines is not None:
            lines[where] = line
            self.noted.add(str(path))
            self.dirty = True

    def noted_lines(self) -> dict[str, dict[LinePath, int | None]]:
        """The line lookups added this run (a forked rule runner sends them to its parent)."""
        return {key: self.entries[key][3] for key in self.noted if key in self.entries}

    def merge_lines(self, lines: dict[str, dict[LinePath, int | None]]) -> None:
        for key, found in lines.items():
            entry = self.entries.get(key)
            if entry is not None and key in self.used and found:
                entry[3].update(found)
                self.noted.add(key)
                self.dirty = True

    def save(self) -> None:
        """Write the entries of the files read this time (files gone since are dropped)."""
        if self.file is None or not self.dirty:
            return
        kept = {k: v for k, v in self.entries.items() if k in self.used}
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            blob = marshal.dumps((_code_stamp(), kept))
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".parse-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                os.replace(tmp, self.file)  # atomic: a concurrent reader sees the old or the new file
            except OSError:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, ValueError):
            return  # a cache that cannot be written only costs time
        self.dirty = False
        _prune(self.file.parent)


def _prune(folder: Path) -> None:
    try:
        files = sorted(folder.glob("*.marshal"), key=lambda f: f.stat().st_mtime_ns, reverse=True)
        for stale in files[MAX_FOLDERS:]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass  # another process pruned at the same time
