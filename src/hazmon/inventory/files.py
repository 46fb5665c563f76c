"""The inventory's files as the loader may read them: inside the inventory, regular files, bounded
in size, in a known encoding. Anything else is a FileProblem, which the loader turns into a finding
(a file an operator can fix), never a traceback, a hang or a memory blow-up.

Encodings:
- YAML files are UTF-8, with or without a byte-order mark. A file in another encoding (UTF-16,
  GBK...) is refused with a finding that says so: YAML files are edited in place by people and by
  the survey import, and one encoding keeps those edits and their diffs simple.
- CSV tag tables (位号表) are read as DCS engineering tools export them: a byte-order mark decides
  (UTF-8, UTF-16 LE or BE); without one, a file that is valid UTF-8 is UTF-8, and any other is
  GB18030 (which contains GBK and GB2312: Chinese DCS tools export in these). Chinese text in
  GB18030 is practically never valid UTF-8 as well (its lead bytes are UTF-8 continuation bytes),
  so the rule does not guess wrong on real tables. A file neither decodes as is refused.
- Text containing NUL characters is refused in both: it is UTF-16 or UTF-32 saved without a
  byte-order mark, or not text at all.
"""

from __future__ import annotations

import codecs
import os
import stat
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

# The largest file read (YAML or CSV). A refinery's tag table of 50,000 points is about 8 MB.
MAX_FILE_BYTES = 16 * 1024 * 1024
# The deepest nesting of mappings and lists in a YAML file: the model needs 6 levels.
MAX_DEPTH = 64
# How many values aliases (*name) may repeat in one YAML file, in all: an alias of an alias of
# an alias... multiplies ("billion laughs"), and each repeated value is validated again.
MAX_ALIAS_VALUES = 100_000
# The longest cell of a tag table: a code, a number, a unit or an OPC UA node ID (the longest,
# a hundred characters or two).
MAX_CELL_CHARS = 1024

# UTF-32's marks first: UTF-32 LE's begins with UTF-16 LE's.
_REFUSED_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"))
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file: an operator's sentence, and where, when that is known."""

    message: str
    line: int | None = None
    path: tuple[str | int, ...] = ()  # the field, as a finding's path


class FileProblem(Exception):
    """A file the loader cannot take as it is (rule SCHEMA), or a reference to a file that may not be
    read (rule REF); `problems` says what, each with its line where there is one."""

    def __init__(self, *problems: Problem, rule: str = "SCHEMA") -> None:
        self.problems = problems
        self.rule = rule
        super().__init__("; ".join(p.message for p in problems))


def problem(message: str, line: int | None = None, path: tuple[str | int, ...] = (), rule: str = "SCHEMA"
            ) -> FileProblem:
    return FileProblem(Problem(message, line, path), rule=rule)


def read_bytes(file: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of `file` if it is a regular file of at most `limit` bytes.

    Opened without blocking (a FIFO would wait for a writer forever) and checked on the open file
    (a device such as /dev/zero would be read until memory runs out)."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise problem("the file does not exist (or is a broken symbolic link)", rule="REF") from None
    except PermissionError:
        raise problem("permission denied: this user may not read the file") from None
    except OSError as exc:
        raise problem(f"the file cannot be opened: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise problem(f"the file is {_kind(st.st_mode)}, not a regular file: only regular files are read")
        if st.st_size > limit:
            raise problem(f"the file is {st.st_size:,} bytes; an inventory file may hold at most {limit:,}")
        chunks, size = [], 0
        while size <= limit:  # read to the end, however the size changes meanwhile
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise problem(f"the file grew beyond {limit:,} bytes while it was read; an inventory file may hold "
                          "at most that")
        return b"".join(chunks)
    except OSError as exc:
        raise problem(f"the file cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _refuse_nul(text: str) -> str:
    if "\0" in text:
        raise problem("the file holds NUL characters: it is UTF-16 or UTF-32 saved without a byte-order mark, or not "
                      "text at all; save it as UTF-8", line=text.count("\n", 0, text.index("\0")) + 1)
    return text


def decode_yaml(data: bytes) -> str:
    """A YAML file's text: UTF-8, with or without a byte-order mark (see the module's docstring)."""
    for bom, name in (*_REFUSED_BOMS, (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise problem(f"the file is saved as {name}; inventory YAML files must be UTF-8: save it as UTF-8", line=1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise problem(f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} at this line; {_guess(data)}): inventory "
                      "YAML files must be UTF-8, save it as UTF-8", line=_line_of(data, exc.start)) from None
    return _refuse_nul(text)


def _guess(data: bytes) -> str:
    """What a file that does not decode probably is, for the operator who must save it again."""
    if b"\0" in data[:4096]:
        return "it holds NUL bytes: UTF-16 or UTF-32 without a byte-order mark?"
    return "saved as GBK or GB18030?"


def decode_table(data: bytes) -> str:
    """A CSV tag table's text: by byte-order mark, else UTF-8 if valid, else GB18030."""
    for bom, name in _REFUSED_BOMS:
        if data.startswith(bom):
            raise problem(f"the file is saved as {name}; save the tag table as UTF-8 (or GB18030)", line=1)
    if data.startswith(_UTF16_BOMS):
        try:
            return _refuse_nul(data.decode("utf-16"))
        except UnicodeDecodeError as exc:
            line = data[:exc.start].decode("utf-16", "replace").count("\n") + 1
            raise problem("the file has a UTF-16 byte-order mark but is not UTF-16 (cut short?): save the tag table "
                          "again", line=line) from None
    try:
        return _refuse_nul(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass
    try:
        return _refuse_nul(data.decode("gb18030"))
    except UnicodeDecodeError as exc:
        hint = f"; {_guess(data)}" if b"\0" in data[:4096] else ""
        raise problem(f"the file is neither UTF-8 nor GB18030 (byte 0x{data[exc.start]:02x} at this line{hint}): save "
                      "the tag table as UTF-8", line=_line_of(data, exc.start)) from None


class Kind(Enum):
    """What a name in the inventory is, as the directory says (no extra system call)."""

    FILE = "file"  # a regular file
    DIR = "dir"  # a folder
    LINK = "link"  # a symbolic link, to anything
    OTHER = "other"  # a FIFO, a socket, a device
    UNREADABLE = "unreadable"  # a folder that cannot be listed (permissions)


def listing(top: Path) -> dict[str, Kind]:
    """Every name under `top` by its path, without following symbolic links (`top` itself only
    when it cannot be listed). A folder that cannot be listed is UNREADABLE: its files would
    otherwise be missing without a word."""
    out: dict[str, Kind] = {}
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue  # no such folder: nothing in it (the loader says so where one is needed)
        except OSError:
            out[folder] = Kind.UNREADABLE
            continue
        for entry in entries:
            if entry.is_symlink():
                out[entry.path] = Kind.LINK
            elif entry.is_dir(follow_symlinks=False):
                out[entry.path] = Kind.DIR
                stack.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                out[entry.path] = Kind.FILE
            else:
                out[entry.path] = Kind.OTHER
    return out


@dataclass
class Place:
    """Where the loader may read: the inventory folder, and any folder symbolic links may lead into
    (the survey import validates an overlay of links into the real inventory). Symbolic links are
    resolved as realpath does, with each folder's real path looked up once: an overlay has a link
    per file, in a handful of folders."""

    roots: tuple[Path, ...]
    _real_dirs: dict[str, str] = field(default_factory=dict)

    def _real(self, path: str, hops: int = 0) -> str:
        parent, name = os.path.split(path)
        real_parent = self._real_dirs.get(parent)
        if real_parent is None:
            real_parent = self._real_dirs[parent] = os.path.realpath(parent)
        full = os.path.join(real_parent, name)
        try:
            link = stat.S_ISLNK(os.lstat(full).st_mode)
        except OSError:
            return full  # absent: what it would be
        if not link or hops > 40:  # 40 links deep: a loop, which reading reports
            return full
        return self._real(os.path.join(real_parent, os.readlink(full)), hops + 1)

    def inside(self, path: Path) -> bool:
        """Whether `path`, its symbolic links resolved, lies inside one of the roots."""
        try:
            real = Path(self._real(os.path.abspath(path)))
        except (OSError, ValueError):
            return False
        return any(real.is_relative_to(root) for root in self.roots)
