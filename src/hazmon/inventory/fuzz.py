"""Hostile input for the inventory loader, in named mutation classes: the fuzz run.

Each class breaks a copy of an inventory (inventories/lab in the suite) the way a careless
operator, a foreign tool or an attacker would; MUTATIONS lists them by name and group. A run applies
every class (some in a few variants, each variant with its own fixed seed) and checks each case:

- validation ends in findings: no exception other than load_valid's InventoryError;
- it ends within CASE_SECONDS (the cases run in a worker process, killed and replaced when a case
  hangs) and within MEMORY_BYTES (RLIMIT_AS in the worker: a blow-up is a MemoryError, reported);
- nothing vanishes silently: every enterprise file is loaded, or named by an error (it or a
  folder above it), so that the count of enterprises loaded and of files with errors covers every
  file;
- nothing outside the inventory shows in a finding (files marked OUTSIDE_MARK are planted beside it);
- every finding renders as one printable line, and as JSON;
- the parse cache is neither poisoned nor hiding a fix: a second, warm validation gives the same
  findings, and once the copy is restored validation gives the pristine findings again;
- classes that must load cleanly (a byte-order mark, a GB18030 tag table...) give no new error,
  and classes that break a file give an error naming it.

The worker runs without root's power to read any file (setpriv), so that permissions apply.
tests/inventory/test_fuzz.py asserts the outcome; bench/bench_fuzz.py prints its counts.

    python -m hazmon.inventory.fuzz [INVENTORY]     # a run, summed up
"""

from __future__ import annotations

import codecs
import json
import os
import random
import re
import select
import shutil
import stat
import subprocess
import sys
import time
import traceback
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.inventory.files import MAX_CELL_CHARS, MAX_DEPTH, MAX_FILE_BYTES

SEED = 238  # 川应急函〔2020〕238号
CASE_SECONDS = 20.0  # per case (a case takes some 50 ms): beyond it, a hang
START_SECONDS = 60.0  # a worker's start: imports and the pristine copy's findings
MEMORY_BYTES = 2 << 30
OUTSIDE_MARK = "OUTSIDE-THE-INVENTORY-2f9c"
OLD = 1_600_000_000  # files are dated back, beyond the parse cache's racy window: the cache is used

CITIES, ENTERPRISES = "cities", "enterprises"

# What a case expects beyond the invariants every case checks.
ANY, CLEAN, ERROR = "any", "clean", "error"


def unprivileged() -> list[str]:
    """The command prefix that runs a program without root's power to read and search any file
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that file permissions apply; empty when not root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


# ---------------------------------------------------------------- the tree a mutation breaks


@dataclass
class Tree:
    """A copy of the inventory, and what a mutation needs to break it reproducibly."""

    root: Path
    outside: Path  # a folder beside the inventory; its files hold OUTSIDE_MARK
    rng: random.Random
    # Paths the mutation broke, that an error must name (ERROR cases).
    broken: list[Path] = field(default_factory=list)

    def files(self, kind: str) -> list[Path]:
        """Regular files by role: enterprise, table, city, province, yaml (every YAML file)."""
        cities = self.root / CITIES
        if kind == "province":
            return [self.root / "province.yml"]
        if kind == "city":
            return sorted(cities.glob("*/city.yml"))
        if kind == "yaml":
            return [*self.files("province"), *self.files("city"), *self.files("enterprise")]
        suffix = {"enterprise": ".yml", "table": ".csv"}[kind]
        return sorted(p for p in cities.glob(f"*/{ENTERPRISES}/**/*{suffix}") if p.is_file() and not p.is_symlink())

    def pick(self, kind: str) -> Path:
        return self.rng.choice(self.files(kind))

    def rewrite(self, path: Path, change: Callable[[str], str]) -> None:
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")

    def sub(self, kind: str, pattern: str, replace: Callable[[re.Match[str]], str]) -> Path:
        """Replace one match of `pattern` (its group `v`, else all of it), chosen among every match in
        the files of `kind`. Returns the file changed."""
        found = [(path, m) for path in self.files(kind)
                 for m in re.finditer(pattern, path.read_text(encoding="utf-8"))]
        path, m = self.rng.choice(found)
        text = path.read_text(encoding="utf-8")
        start, end = m.span("v") if "v" in m.groupdict() else m.span()
        path.write_text(text[:start] + replace(m) + text[end:], encoding="utf-8")
        return path

    def break_(self, path: Path) -> Path:
        self.broken.append(path)
        return path

    def table_ref(self) -> tuple[Path, str]:
        """An enterprise file naming a tag table, and the name it gives."""
        for path in self.files("enterprise"):
            m = re.search(r"tag_table: (\S+)", path.read_text(encoding="utf-8"))
            if m:
                return path, m.group(1)
        raise LookupError("no enterprise names a tag table")

    def point_table(self, target: str) -> Path:
        """Make the tag table reference name `target`; the enterprise file must say why not."""
        path, name = self.table_ref()
        self.rewrite(path, lambda t: t.replace(f"tag_table: {name}", f"tag_table: {json.dumps(target)}", 1))
        return self.break_(path)


Apply = Callable[[Tree], None]


@dataclass(frozen=True)
class Mutation:
    name: str
    group: str
    apply: Apply
    expect: str = ANY  # CLEAN: no new error; ERROR: an error names each path in Tree.broken
    variants: int = 1


# ---------------------------------------------------------------- the mutations


def _reencode(kind: str, encoding: str, bom: bytes = b"", expect_error: bool = True) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick(kind)
        path.write_bytes(bom + path.read_text(encoding="utf-8").encode(encoding))
        if expect_error:
            t.break_(path)
    return apply


def _gb18030_table(t: Tree) -> None:
    path = t.pick("table")
    # Chinese text, a GBK character (°) and one only GB18030 has (³): all must read back.
    text = path.read_text(encoding="utf-8").replace("°C", "℃", 1)
    header, _, rest = text.partition("\n")
    path.write_bytes((header + "\n" + rest.replace(",m,", ",m³,", 1)).encode("gb18030"))


def _bytes_edit(kind: str, how: str) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick(kind)
        data = bytearray(path.read_bytes())
        at = t.rng.randrange(len(data))
        if how == "truncate":
            del data[at:]
        elif how == "flip":
            for _ in range(t.rng.randint(1, 8)):
                data[t.rng.randrange(len(data))] ^= 1 << t.rng.randrange(8)
        elif how == "random":
            data = bytearray(t.rng.randbytes(t.rng.randint(1, 4096)))
        elif how == "nul":
            data[at:at] = b"\0"
        elif how == "control":
            data[at:at] = bytes([t.rng.choice([1, 7, 8, 0x0B, 0x0C, 0x1B, 0x7F])])
        elif how == "bom-inside":
            data[at:at] = codecs.BOM_UTF8
        path.write_bytes(bytes(data))
    return apply


def _write(kind: str, content: str | bytes, expect_error: bool = True) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick(kind)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        if expect_error:
            t.break_(path)
    return apply


def _append(kind: str, text: str, expect_error: bool = True) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick(kind)
        t.rewrite(path, lambda s: s + text)
        if expect_error:
            t.break_(path)
    return apply


def _prepend(kind: str, text: str, expect_error: bool = True) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick(kind)
        t.rewrite(path, lambda s: text + s)
        if expect_error:
            t.break_(path)
    return apply


def _duplicate_key(t: Tree) -> None:
    # A `key: value` line of block style, written twice (at its own indentation).
    path = t.sub("enterprise", r"(?m)^(?P<indent> *)(?P<v>[a-z_]+: [^\n{\[]+)$",
                 lambda m: f"{m['v']}\n{m['indent']}{m['v']}")
    t.break_(path)


def _duplicate_flow_key(t: Tree) -> None:
    path = t.sub("enterprise", r"\{(?P<v>[a-z_]+: [^,}\n]+)", lambda m: f"{m['v']}, {m['v']}")
    t.break_(path)


def _duplicate_column(t: Tree) -> None:
    path = t.pick("table")
    t.rewrite(path, lambda s: s.replace(",", ",kind,", 1))
    t.break_(path)


def _bomb(t: Tree) -> None:
    levels = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))
    path = t.pick("enterprise")
    t.rewrite(path, lambda s: "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels + s)
    t.break_(path)


def _alias_of_itself(t: Tree) -> None:
    _append("enterprise", "pipelines: &p [{name: x, points: *p}]\n")(t)


def _merge_key(t: Tree) -> None:
    # A merge key (PyYAML's own construction): legal YAML, the model decides.
    path = t.sub("enterprise", r"(?m)^site: (?P<v>\{[^\n]*\})$", lambda m: f"&site {m['v']}\nxsite: {{<<: *site}}")
    t.break_(path)  # xsite is not a field


def _anchors_within_bounds(t: Tree) -> None:
    path = t.sub("enterprise", r"registry: (?P<v>\{[^}\n]*\})", lambda m: f"&r{t.rng.randrange(99)} {m['v']}")
    del path  # an anchor without an alias: nothing changes


def _deep(kind: str, depth: int) -> Apply:
    if kind == "flow":
        return _append("enterprise", "pipelines: " + "[" * depth + "]" * depth + "\n")
    block = "".join(" " * i + f"k{i}:\n" for i in range(1, depth)) + " " * depth + "x\n"
    return _append("enterprise", "pipelines:\n" + block)


def _huge_cell(width: int) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick("table")
        lines = path.read_text(encoding="utf-8").split("\n")
        row = t.rng.randrange(1, len([x for x in lines if x]))
        cells = lines[row].split(",")
        cells[t.rng.randrange(len(cells))] = "X" * width
        lines[row] = ",".join(cells)
        path.write_text("\n".join(lines), encoding="utf-8")
        t.break_(path)
    return apply


def _csv_edit(how: str) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick("table")
        text = path.read_text(encoding="utf-8")
        header, _, rest = text.partition("\n")
        if how == "tabs":
            text = text.replace(",", "\t")
        elif how == "ragged":
            rows = rest.split("\n")
            i = t.rng.randrange(len(rows))
            rows[i] = rows[i] + ",extra,cells" if t.rng.random() < 0.5 else rows[i].rsplit(",", 3)[0]
            text = header + "\n" + "\n".join(rows)
        elif how == "quote":
            text = header + "\n" + '"' + rest
        elif how == "header-only":
            text = header + "\n"
        elif how == "cell":
            rows = rest.split("\n")
            i = t.rng.randrange(len([r for r in rows if r]))
            cells = rows[i].split(",")
            cells[t.rng.randrange(len(cells))] = t.rng.choice(_CELL_SWAPS)
            rows[i] = ",".join(cells)
            text = header + "\n" + "\n".join(rows)
        path.write_text(text, encoding="utf-8")
    return apply


_CELL_SWAPS = ("nan", "inf", "-inf", "1e400", "9" * 5000, "", "ｃｏｄｅ", "\u202e", "=cmd|' /C calc'!A0", "0x1F",
               "true", "-0", "1,5", '"', "\x07", "名称")

# A value of each kind, swapped into fields of every other kind (type swaps).
_SWAPS = ("[]", "{}", "[1, [2]]", "{a: {b: 1}}", "~", "true", "0", "-1", "1e400", "9" * 30, "0.5", ".nan",
          "-.inf", "''", '"文本"', "2026-02-29", "!!binary aGk=", "0x1F", "1:20", '"\\u202e"', '"\\t"', "2026-01-01")
_VALUE = r"(?P<v>\"[^\"\n]*\"|[^,}\n\[{&*!][^,}\n]*)"
FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "str": ("name", "vendor", "unit", "system", "carrier", "model"),
    "int": ("channels", "control_room_links", "cabinet_units_free", "port", "grade", "slave_id", "register",
            "channel", "batch"),
    "float": ("contracted_mbps", "measured_mbps", "range_min", "range_max", "scale", "alarm_high", "interval"),
    "bool": ("gb28181", "tls", "bridge_installed"),
    "enum": ("kind", "location", "protocol", "type", "state"),
    "date": ("measured_on",),
    "ipv4": ("address", "host", "server"),
    "pattern": ("code", "city", "device_id", "channel_id", "server_id", "domain"),
    "literal": ("vendor", "device_type", "function", "byte_order", "word_order", "parity", "via", "transport"),
    "list": ("programmes", "key_processes", "annotations", "ntp"),
    "record": ("site", "line", "registry", "platform", "access_gateway", "daq_gateway", "ai_box", "uplink",
               "mqtt", "prometheus"),
}


def _swap(kind: str) -> Apply:
    names = "|".join(FIELD_KINDS[kind])
    if kind == "list":
        pattern = rf"(?<![\w-])(?:{names}): (?P<v>\[[^\]\n]*\])"
    elif kind == "record":
        pattern = rf"(?<![\w-])(?:{names}): (?P<v>\{{[^}}\n]*\}})"
    else:
        pattern = rf"(?<![\w-])(?:{names}): {_VALUE}"

    def apply(t: Tree) -> None:
        t.sub("yaml", pattern, lambda m: t.rng.choice(_SWAPS))
    return apply


def _number(values: tuple[str, ...]) -> Apply:
    names = "|".join(FIELD_KINDS["float"] + FIELD_KINDS["int"])

    def apply(t: Tree) -> None:
        t.sub("yaml", rf"(?<![\w-])(?:{names}): {_VALUE}", lambda m: t.rng.choice(values))
    return apply


def _date(value: str) -> Apply:
    def apply(t: Tree) -> None:
        t.break_(t.sub("yaml", r"measured_on: (?P<v>[0-9-]+)", lambda m: value))
    return apply


def _unicode(how: str) -> Apply:
    def apply(t: Tree) -> None:
        if how == "rtl":
            t.sub("yaml", r"(?m)^name: (?P<v>[^\n]+)$", lambda m: "\u202e" + m["v"] + "\u202c")
        elif how == "combining":
            t.sub("yaml", r"(?m)^name: (?P<v>[^\n]+)$", lambda m: m["v"] + "\u0301\u0302\u0303" * 50)
        elif how == "fullwidth":
            fullwidth = {c: c + 0xFEE0 for c in range(48, 58)}  # ０-９
            t.sub("enterprise", r'city: "(?P<v>\d+)"', lambda m: m["v"].translate(fullwidth))
        elif how == "homoglyph-key":
            path = t.sub("enterprise", r"(?m)^(?P<v>name):", lambda m: "nаme")  # Cyrillic а
            t.break_(path)
        elif how == "surrogate":
            path = t.sub("enterprise", r"(?m)^name: (?P<v>[^\n]+)$", lambda m: '"\\ud800"')
            t.break_(path)
        elif how == "noncharacter":
            t.sub("enterprise", r"(?m)^name: (?P<v>[^\n]+)$", lambda m: m["v"] + "\ufffe")
        elif how == "filename":
            path = t.pick("enterprise")
            odd = Path(os.fsdecode(bytes(path.parent) + b"/\xff\xfe-" + path.name.encode()))
            path.rename(odd)
    return apply


def _table_target(how: str) -> Apply:
    def apply(t: Tree) -> None:
        path, name = t.table_ref()
        folder = path.parent
        if how == "absolute":
            t.point_table(str(t.outside / "outside.csv"))
        elif how == "dotdot":
            t.point_table(os.path.relpath(t.outside / "outside.csv", folder))
        elif how == "dotdot-inside":  # a path with '..' that stays inside: allowed
            t.point_table(f"../{ENTERPRISES}/{name}")
            t.broken.clear()
        elif how == "symlink-out":
            (folder / "linked.csv").symlink_to(t.outside / "outside.csv")
            t.point_table("linked.csv")
        elif how == "symlink-folder-out":
            (folder / "shared").symlink_to(t.outside)
            t.point_table("shared/outside.csv")
        elif how in ("/dev/zero", "/dev/urandom", "/proc/self/environ"):
            t.point_table(how)
        elif how == "link-device":
            (folder / "dev.csv").symlink_to("/dev/zero")
            t.point_table("dev.csv")
        elif how == "fifo":
            os.mkfifo(folder / "pipe.csv")
            t.point_table("pipe.csv")
        elif how == "device":
            try:
                os.mknod(folder / "dev.csv", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers
            except OSError:  # no CAP_MKNOD: a FIFO is the other kind of file that never ends
                os.mkfifo(folder / "dev.csv")
            t.point_table("dev.csv")
        elif how == "folder":
            (folder / "dir.csv").mkdir()
            t.point_table("dir.csv")
        elif how == "missing":
            t.point_table("missing.csv")
        elif how == "not-csv":
            t.point_table(t.pick("enterprise").name)
        elif how == "nul":
            t.point_table("a\0b.csv")
        elif how == "long-name":
            t.point_table("x" * 300 + ".csv")
        elif how == "not-text":
            t.rewrite(path, lambda s: s.replace(f"tag_table: {name}", "tag_table: [a.csv, b.csv]", 1))
            t.break_(path)
        elif how == "huge":
            with (folder / "huge.csv").open("wb") as fh:
                fh.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
            t.point_table("huge.csv")
        elif how == "permission":
            (folder / name).chmod(0)
            t.break_(path)
        elif how == "loop":
            (folder / "loop.csv").symlink_to("loop.csv")
            t.point_table("loop.csv")
    return apply


def _enterprise_file(how: str) -> Apply:
    def apply(t: Tree) -> None:
        path = t.break_(t.pick("enterprise"))
        if how == "permission":
            path.chmod(0)
            return
        shutil.copy(path, t.outside / "elsewhere.yml")
        path.unlink()
        if how == "fifo":
            os.mkfifo(path)
        elif how == "folder":
            path.mkdir()
        elif how == "symlink-out":
            path.symlink_to(t.outside / "outside.yml")
        elif how == "symlink-device":
            path.symlink_to("/dev/zero")
        elif how == "dangling":
            path.symlink_to("nowhere.yml")
        elif how == "huge":
            with path.open("wb") as fh:
                fh.truncate(MAX_FILE_BYTES + 1)
        elif how == "yaml-extension":
            t.broken[-1] = path.with_suffix(".yaml")
            shutil.copy(t.outside / "elsewhere.yml", t.broken[-1])
    return apply


def _folder(how: str) -> Apply:
    def apply(t: Tree) -> None:
        city = t.rng.choice(sorted((t.root / CITIES).iterdir()))
        folder = city / ENTERPRISES
        if how == "unreadable":
            for path in folder.glob("*.yml"):
                t.break_(path)
            folder.chmod(0)
        elif how == "file":
            for path in folder.glob("*.yml"):
                t.break_(path)
            shutil.rmtree(folder)
            folder.write_text("not a folder\n", encoding="utf-8")
            t.broken[:] = [folder]
        elif how == "symlink-loop":
            (folder / "loop").symlink_to(".")
        elif how == "symlink-folder":
            (folder / "more").symlink_to(t.outside)
            t.break_(folder / "more")
        elif how == "city-outside":
            link = t.root / CITIES / "5199-outside"
            shutil.copytree(city, t.outside / "city")
            link.symlink_to(t.outside / "city")
            t.break_(link)
        elif how == "no-city-file":
            (city / "city.yml").unlink()
            t.break_(city / "city.yml")
        elif how == "no-province":
            (t.root / "province.yml").unlink()
            t.break_(t.root / "province.yml")
        elif how == "unreadable-city":
            (city / "city.yml").chmod(0)
            t.break_(city / "city.yml")
    return apply


def _duplicate_enterprise(how: str) -> Apply:
    def apply(t: Tree) -> None:
        path = t.pick("enterprise")
        if how == "copy":
            copy = path.with_name("aa-copy-" + path.name)
            shutil.copy(path, copy)
            t.break_(max(path, copy))  # files are read in name order: the later one is refused
        elif how == "same-name-address":
            others = [p for p in t.files("enterprise") if p != path]
            other = t.rng.choice(others)
            name = re.search(r"(?m)^name: (.+)$", path.read_text(encoding="utf-8"))
            addr = re.search(r"access_gateway: \{address: ([\d.]+)", path.read_text(encoding="utf-8"))
            if name and addr:
                t.rewrite(other, lambda s: re.sub(r"(?m)^name: .+$", f"name: {name[1]}", s, count=1))
                t.rewrite(other, lambda s: re.sub(r"access_gateway: \{address: [\d.]+",
                                                  f"access_gateway: {{address: {addr[1]}", s, count=1))
                if "access_gateway: {address:" in other.read_text(encoding="utf-8"):
                    t.break_(max(path, other))  # files are read in path order: the later one is refused
    return apply


MUTATIONS: tuple[Mutation, ...] = (
    # encodings and byte-order marks
    Mutation("utf8_bom_yaml", "encodings", _reencode("yaml", "utf-8", codecs.BOM_UTF8, False), CLEAN),
    Mutation("utf8_bom_table", "encodings", _reencode("table", "utf-8", codecs.BOM_UTF8, False), CLEAN),
    Mutation("utf16_bom_table", "encodings", _reencode("table", "utf-16", expect_error=False), CLEAN),
    Mutation("utf16be_bom_table", "encodings", _reencode("table", "utf-16-be", codecs.BOM_UTF16_BE, False), CLEAN),
    Mutation("gb18030_table", "encodings", _gb18030_table, CLEAN),
    Mutation("gbk_yaml", "encodings", _reencode("enterprise", "gbk"), ERROR),
    Mutation("utf16_bom_yaml", "encodings", _reencode("yaml", "utf-16"), ERROR),
    Mutation("utf32_yaml", "encodings", _reencode("yaml", "utf-32"), ERROR),
    Mutation("utf32_table", "encodings", _reencode("table", "utf-32"), ERROR),
    Mutation("utf16_no_bom_table", "encodings", _reencode("table", "utf-16-le"), ERROR),
    Mutation("utf16_no_bom_yaml", "encodings", _reencode("enterprise", "utf-16-le"), ERROR),
    Mutation("latin1_table", "encodings", _write("table", "code,kind\nT\xff1,level\n".encode("latin-1")), ERROR),
    Mutation("bom_inside_yaml", "encodings", _bytes_edit("yaml", "bom-inside"), variants=2),
    # truncation and bytes
    Mutation("truncate_yaml", "bytes", _bytes_edit("yaml", "truncate"), variants=3),
    Mutation("truncate_table", "bytes", _bytes_edit("table", "truncate"), variants=2),
    Mutation("byte_flip_yaml", "bytes", _bytes_edit("yaml", "flip"), variants=4),
    Mutation("byte_flip_table", "bytes", _bytes_edit("table", "flip"), variants=3),
    Mutation("random_bytes_yaml", "bytes", _bytes_edit("enterprise", "random"), variants=2),
    Mutation("random_bytes_table", "bytes", _bytes_edit("table", "random")),
    Mutation("nul_byte_yaml", "bytes", _bytes_edit("yaml", "nul"), variants=2),
    Mutation("control_char_yaml", "bytes", _bytes_edit("yaml", "control"), variants=2),
    Mutation("control_char_table", "bytes", _bytes_edit("table", "control"), variants=2),
    # empty and odd documents
    Mutation("empty_enterprise", "structure", _write("enterprise", ""), ERROR),
    Mutation("comment_only_enterprise", "structure", _write("enterprise", "# to do\n# later\n"), ERROR),
    Mutation("blank_enterprise", "structure", _write("enterprise", "\n  \n\t\n"), ERROR),
    Mutation("null_document", "structure", _write("yaml", "---\n~\n...\n"), ERROR),
    Mutation("empty_city", "structure", _write("city", "# nothing\n"), ERROR),
    Mutation("empty_province", "structure", _write("province", ""), ERROR),
    Mutation("list_document", "structure", _write("yaml", "- a\n- b\n"), ERROR),
    Mutation("scalar_document", "structure", _write("yaml", "just words\n"), ERROR),
    Mutation("two_documents", "structure", _append("enterprise", "---\ncode: x\n"), ERROR),
    Mutation("duplicate_key_block", "structure", _duplicate_key, ERROR, variants=3),
    Mutation("duplicate_key_flow", "structure", _duplicate_flow_key, ERROR, variants=3),
    Mutation("duplicate_column", "structure", _duplicate_column, ERROR),
    Mutation("deep_flow", "structure", _deep("flow", 5000), ERROR),
    Mutation("deep_flow_python", "structure", _deep("flow", 700), ERROR),
    Mutation("deep_block", "structure", _deep("block", MAX_DEPTH + 8), ERROR),
    Mutation("alias_bomb", "structure", _bomb, ERROR),
    Mutation("alias_of_itself", "structure", _alias_of_itself, ERROR),
    Mutation("merge_key", "structure", _merge_key, ERROR),
    Mutation("anchor_unused", "structure", _anchors_within_bounds, CLEAN),
    Mutation("explicit_tags", "structure",
             _append("enterprise", "pipelines: !!set {a, b}\nx: !!python/object:os.system {}\n"), ERROR),
    Mutation("complex_key", "structure", _append("enterprise", "? [a, b]\n: c\n"), ERROR),
    Mutation("huge_cell", "structure", _huge_cell(MAX_CELL_CHARS + 1), ERROR),
    Mutation("huge_cell_beyond_csv_limit", "structure", _huge_cell(200_000), ERROR),
    Mutation("table_tab_separated", "structure", _csv_edit("tabs")),
    Mutation("table_ragged_rows", "structure", _csv_edit("ragged"), variants=2),
    Mutation("table_unclosed_quote", "structure", _csv_edit("quote")),
    Mutation("table_header_only", "structure", _csv_edit("header-only")),
    Mutation("table_empty", "structure", _write("table", "", expect_error=False)),
    # the wrong type in every kind of model field
    *(Mutation(f"swap_{kind}", "types", _swap(kind), variants=3) for kind in FIELD_KINDS),
    Mutation("swap_table_cell", "types", _csv_edit("cell"), variants=4),
    # numbers and dates
    Mutation("nan", "numbers", _number((".nan", ".NaN", "nan")), variants=2),
    Mutation("infinity", "numbers", _number((".inf", "-.inf", "1e400", "-1e999")), variants=2),
    Mutation("huge_int", "numbers", _number(("9" * 5000, "1" + "0" * 30, "-" + "9" * 40))),
    Mutation("tiny_scale", "numbers", lambda t: t.sub("enterprise", r"scale: (?P<v>[\d.]+)", lambda m: "1e-320")),
    Mutation("subnormal_and_zero", "numbers", _number(("5e-324", "-0.0", "0", "1e-310"))),
    Mutation("impossible_date", "numbers", _date("2026-02-30"), ERROR),
    Mutation("impossible_month", "numbers", _date("2026-13-01"), ERROR),
    Mutation("bad_timezone", "numbers", _date("2026-01-01 10:00:00 +99:00"), ERROR),
    # unicode oddities
    Mutation("unicode_rtl_override", "unicode", _unicode("rtl")),
    Mutation("unicode_combining", "unicode", _unicode("combining")),
    Mutation("unicode_fullwidth_digits", "unicode", _unicode("fullwidth")),
    Mutation("unicode_homoglyph_key", "unicode", _unicode("homoglyph-key"), ERROR),
    Mutation("unicode_surrogate_escape", "unicode", _unicode("surrogate"), ERROR),
    Mutation("unicode_noncharacter", "unicode", _unicode("noncharacter")),
    Mutation("unicode_filename_not_utf8", "unicode", _unicode("filename")),
    # tag tables elsewhere
    *(Mutation(f"table_{how.strip('/').replace('/', '_').replace('-', '_')}", "paths", _table_target(how), ERROR)
      for how in ("absolute", "dotdot", "symlink-out", "symlink-folder-out", "/dev/zero", "/dev/urandom",
                  "/proc/self/environ", "link-device", "fifo", "device", "folder", "missing", "not-csv", "nul",
                  "long-name", "not-text", "huge", "permission", "loop")),
    Mutation("table_dotdot_inside", "paths", _table_target("dotdot-inside"), CLEAN),
    # enterprise files that are not plain files
    *(Mutation(f"enterprise_{how.replace('-', '_')}", "files", _enterprise_file(how), ERROR)
      for how in ("permission", "fifo", "folder", "symlink-out", "symlink-device", "dangling", "huge",
                  "yaml-extension")),
    # folders
    *(Mutation(f"folder_{how.replace('-', '_')}", "folders", _folder(how), ERROR)
      for how in ("unreadable", "file", "symlink-folder", "city-outside", "no-city-file", "no-province",
                  "unreadable-city")),
    Mutation("folder_symlink_loop", "folders", _folder("symlink-loop")),
    # duplicated enterprises and addresses
    Mutation("duplicate_enterprise_file", "duplicates", _duplicate_enterprise("copy"), ERROR),
    Mutation("same_name_same_gateway_address", "duplicates", _duplicate_enterprise("same-name-address"), ERROR),
)


def cases(mutations: tuple[Mutation, ...] = MUTATIONS) -> list[tuple[Mutation, int]]:
    return [(m, v) for m in mutations for v in range(m.variants)]


# ---------------------------------------------------------------- one case, in the worker


Key = tuple[str, int | None, str, str, str, str]


@dataclass
class Outcome:
    mutation: str
    group: str
    variant: int
    seconds: float = 0.0
    enterprises: int = 0
    findings: int = 0
    errors: int = 0
    failures: list[str] = field(default_factory=list)  # why the case failed; empty: it passed


def _keys(inv: object, root: Path) -> list[Key]:
    return [(_rel(f.file, root), f.line, f.rule, str(f.severity), f.path, f.message)
            for f in inv.report.findings]  # type: ignore[attr-defined]


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _enterprise_like(root: Path) -> list[Path]:
    """Every name an enterprise file may have, whatever it is (links and folders too)."""
    out = []
    top = root / CITIES
    for city in sorted(top.iterdir()) if top.is_dir() else []:
        if city.is_symlink():
            continue  # its files are outside: an error names the link
        for folder, dirs, names in os.walk(city / ENTERPRISES):
            out.extend(Path(folder, n) for n in [*dirs, *names] if n.endswith((".yml", ".yaml")))
    return out


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_case(inv: object, root: Path, mutation: Mutation, broken: list[Path], baseline_errors: int) -> list[str]:
    """The invariants a validated case must hold (see the module's docstring)."""
    from hazmon.inventory.findings import Severity
    from hazmon.inventory.loader import enterprise_key

    report = inv.report  # type: ignore[attr-defined]
    failures = []
    loaded = {inv.origins[enterprise_key(e.code)].file for e in inv.enterprises}  # type: ignore[attr-defined]
    named = {f.file for f in report.findings if f.severity is Severity.ERROR}
    for path in _enterprise_like(root):
        if path not in loaded and not ({path, *path.parents} & named):
            failures.append(f"silent: {_rel(path, root)} is neither loaded nor named by an error")
    for path in broken if mutation.expect == ERROR else ():
        if not ({path, *path.parents} & named):
            failures.append(f"no error names {_rel(path, root)}")
    if mutation.expect == CLEAN and len(report.errors) != baseline_errors:
        failures.append(f"expected no new error, got: {[f.render(root) for f in report.errors][:3]}")
    for f in report.findings:
        line = f.render(root)
        text = line + json.dumps(f.as_dict(), ensure_ascii=False)
        text.encode("utf-8")  # raises on what cannot be written out
        if OUTSIDE_MARK in text:
            failures.append(f"leak: a finding shows a file outside the inventory: {line[:200]}")
        if _UNPRINTABLE.search(line) or any(unicodedata.category(c) == "Cf" for c in line):
            failures.append(f"unprintable: {line[:200]!r}")
    return failures


def _age(root: Path, when: float) -> None:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.utime(path, (when, when), follow_symlinks=False)


def unlock(top: Path) -> None:
    """Give back to every folder under `top` the permissions a mutation took (to remove it)."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            os.chmod(folder, 0o755)
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        os.chmod(entry.path, 0o644)
        except OSError:
            continue


class Worker:
    """Runs cases one after another on one copy of the inventory (its path fixed, so that the
    parse cache of one case meets the next)."""

    def __init__(self, source: Path, work: Path) -> None:
        from hazmon.inventory.validate import validate

        self.source, self.work = source, work
        self.root = (work / "inventory").resolve()
        self.outside = work / "outside"
        self.outside.mkdir(parents=True, exist_ok=True)
        (self.outside / "outside.csv").write_text(f"{OUTSIDE_MARK},kind\n{OUTSIDE_MARK},level\n", encoding="utf-8")
        (self.outside / "outside.yml").write_text(f"code: {OUTSIDE_MARK}\nname: {OUTSIDE_MARK}\n", encoding="utf-8")
        self._restore()
        inv, _ = validate(self.root)
        self.baseline = _keys(inv, self.root)
        self.baseline_errors = len(inv.report.errors)

    def _restore(self) -> None:
        if self.root.exists():
            unlock(self.root)
            shutil.rmtree(self.root)
        shutil.copytree(self.source, self.root, symlinks=True, ignore=shutil.ignore_patterns(".vault-pass"))
        _age(self.root, OLD)
        for extra in self.outside.iterdir():
            if extra.name in ("outside.csv", "outside.yml"):
                continue
            if extra.is_dir() and not extra.is_symlink():
                unlock(extra)
                shutil.rmtree(extra)
            else:
                extra.unlink()

    def run(self, index: int) -> Outcome:
        from hazmon.inventory.findings import InventoryError
        from hazmon.inventory.validate import load_valid, validate

        mutation, variant = cases()[index]
        out = Outcome(mutation.name, mutation.group, variant)
        started = time.perf_counter()
        tree = Tree(self.root, self.outside, random.Random(f"{SEED}:{mutation.name}:{variant}"))
        try:
            mutation.apply(tree)
            _age(self.root, OLD + 60)  # another stamp than the pristine files': no stale cache hit
            inv, _ = validate(self.root)  # cold for what changed, warm for the rest
            first = _keys(inv, self.root)
            out.enterprises, out.findings, out.errors = len(inv.enterprises), len(first), len(inv.report.errors)
            out.failures += check_case(inv, self.root, mutation, tree.broken, self.baseline_errors)
            try:
                again, _ = load_valid(self.root)  # warm: what the cache kept
                second = _keys(again, self.root)
            except InventoryError as exc:
                second = _keys(exc, self.root)
            if Counter(second) != Counter(first):
                out.failures.append("cache: a warm validation gives other findings than the cold one")
        except Exception:
            out.failures.append("traceback: " + traceback.format_exc(limit=-6))
        try:
            self._restore()
            inv, _ = validate(self.root)
            if _keys(inv, self.root) != self.baseline:
                out.failures.append("restore: the restored copy does not give the pristine findings (the cache "
                                    "hid the fix)")
        except Exception:
            out.failures.append("traceback (restoring): " + traceback.format_exc(limit=-6))
        out.seconds = time.perf_counter() - started
        return out


def worker_main(source: str, work: str) -> int:
    """The worker process: case indexes in on stdin, one JSON outcome per line out."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    worker = Worker(Path(source), Path(work))
    print("ready", flush=True)
    for line in sys.stdin:
        outcome = worker.run(int(line))
        print(json.dumps(outcome.__dict__, ensure_ascii=True), flush=True)
    return 0


# ---------------------------------------------------------------- the run, in the parent


class _Lines:
    """Lines from a child's stdout, each awaited until a deadline (a hang must not hang us)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, b""

    def read(self, seconds: float) -> str | None:
        deadline = time.monotonic() + seconds
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None  # the worker died
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


def run(source: Path, work: Path, *, seconds: float = CASE_SECONDS,
        only: Callable[[Mutation], bool] | None = None) -> list[Outcome]:
    """Every case of MUTATIONS on copies of `source` under `work`, in worker processes."""
    todo = [(i, m, v) for i, (m, v) in enumerate(cases()) if only is None or only(m)]
    outcomes: list[Outcome] = []
    proc: subprocess.Popen[bytes] | None = None
    lines: _Lines | None = None
    started = 0
    try:
        for index, mutation, variant in todo:
            if proc is None:
                started += 1
                proc, lines = _start(source, work / f"worker-{started}")
            proc.stdin.write(f"{index}\n".encode())  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            began = time.perf_counter()
            line = lines.read(seconds)  # type: ignore[union-attr]
            if line is None:
                why = "hang" if proc.poll() is None else f"crash (worker exit status {proc.returncode})"
                _stop(proc)
                log = (work / f"worker-{started}.log").read_text(errors="replace")[-2000:]
                outcomes.append(Outcome(mutation.name, mutation.group, variant, time.perf_counter() - began,
                                        failures=[f"{why}: no outcome within {seconds:g} s\n{log}"]))
                proc = None
                continue
            outcomes.append(Outcome(**json.loads(line)))
    finally:
        if proc is not None:
            _stop(proc)
    return outcomes


def _start(source: Path, work: Path) -> tuple[subprocess.Popen[bytes], _Lines]:
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HAZMON_CACHE_DIR": str(work / "cache")}
    log = (work.parent / f"{work.name}.log").open("wb")
    proc = subprocess.Popen(
        [*unprivileged(), sys.executable, "-m", "hazmon.inventory.fuzz", "--worker", str(source), str(work)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
    )
    log.close()
    lines = _Lines(proc.stdout.fileno())  # type: ignore[union-attr]
    if lines.read(START_SECONDS) != "ready":
        _stop(proc)
        raise RuntimeError(f"the fuzz worker did not start: {(work.parent / f'{work.name}.log').read_text()[-2000:]}")
    return proc, lines


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()  # our own child, by its handle
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


@dataclass
class Summary:
    classes: int
    cases: int
    findings: int
    failures: int
    tracebacks: int
    hangs: int
    seconds: float
    by_class: dict[str, list[Outcome]]


def summarise(outcomes: list[Outcome], seconds: float) -> Summary:
    by_class: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_class.setdefault(o.mutation, []).append(o)
    failed = [f for o in outcomes for f in o.failures]
    return Summary(
        classes=len(by_class), cases=len(outcomes), findings=sum(o.findings for o in outcomes),
        failures=sum(1 for o in outcomes if o.failures),
        tracebacks=sum(1 for f in failed if f.startswith(("traceback", "crash"))),
        hangs=sum(1 for f in failed if f.startswith("hang")), seconds=seconds, by_class=by_class,
    )


def report(summary: Summary) -> Iterator[str]:
    yield f"{'class':<36} {'group':<11} {'cases':>5} {'findings':>8} {'errors':>6} {'failed':>6} {'max s':>6}"
    for name, outs in summary.by_class.items():
        yield (f"{name:<36} {outs[0].group:<11} {len(outs):>5} {sum(o.findings for o in outs):>8} "
               f"{sum(o.errors for o in outs):>6} {sum(1 for o in outs if o.failures):>6} "
               f"{max(o.seconds for o in outs):>6.2f}")
    yield (f"total: {summary.classes} classes, {summary.cases} cases, {summary.findings} findings, "
           f"failures={summary.failures}, tracebacks={summary.tracebacks}, hangs={summary.hangs}, "
           f"{summary.seconds:.1f} s")


def main(argv: list[str] | None = None) -> int:
    import tempfile

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--worker"]:
        return worker_main(args[1], args[2])
    source = Path(args[0] if args else Path(__file__).resolve().parents[3] / "inventories" / "lab").resolve()
    with tempfile.TemporaryDirectory(prefix="hazmon-fuzz-") as tmp:
        started = time.perf_counter()
        outcomes = run(source, Path(tmp))
        summary = summarise(outcomes, time.perf_counter() - started)
        for line in report(summary):
            print(line)
        for o in outcomes:
            for f in o.failures:
                print(f"FAILED {o.mutation}[{o.variant}]: {f}")
        unlock(Path(tmp))
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
