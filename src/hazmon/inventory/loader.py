"""Read an inventory tree into the typed model, turning every schema problem into a finding.

Layout (one folder per city, one file per enterprise, so a city team owns its folder):

    inventories/<env>/province.yml
    inventories/<env>/cities/<code>-<name>/city.yml
    inventories/<env>/cities/<code>-<name>/enterprises/<anything>.yml
    inventories/<env>/cities/<code>-<name>/enterprises/<anything>.csv   (tag tables, optional)

Every file is read through hazmon.inventory.files: only regular files inside the inventory (symbolic
links resolved), of bounded size, in a known encoding. Whatever a file holds, the outcome is the
model and findings, never an exception: a file that gives no record says why in an error naming it,
so that no enterprise can vanish from the inventory without one (an empty file included).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from hazmon.inventory.files import FileProblem, Kind, Place, listing
from hazmon.inventory.findings import FieldPath, Finding, Report, Severity, format_path
from hazmon.inventory.model import City, Enterprise, Province
from hazmon.inventory.parallel import prefetch
from hazmon.inventory.parsecache import ParseCache, stamp_of
from hazmon.inventory.sourcemap import Origin, SourceMap, read_tag_table, read_yaml

PROVINCE_FILE = "province.yml"
CITIES_DIR = "cities"
CITY_FILE = "city.yml"
ENTERPRISES_DIR = "enterprises"


@dataclass
class Inventory:
    root: Path
    province: Province | None = None
    cities: dict[str, City] = field(default_factory=dict)
    enterprises: list[Enterprise] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)
    city_dirs: dict[str, Path] = field(default_factory=dict)
    sourcemap: SourceMap = field(default_factory=SourceMap)
    report: Report = field(default_factory=Report)
    parse_cache: ParseCache = field(default_factory=lambda: ParseCache(None))
    # Where files may be read from (the inventory folder, and folders links may lead into).
    place: Place = field(default_factory=lambda: Place(()))

    @property
    def name(self) -> str:
        return self.root.name

    def enterprise(self, code_or_slug: str) -> Enterprise | None:
        for ent in self.enterprises:
            if code_or_slug in (ent.code, ent.slug, ent.name):
                return ent
        return None

    def origin_of(self, key: str) -> Origin:
        return self.origins.get(key, Origin(self.root))

    def emit(
        self,
        rule: str,
        severity: Severity,
        key: str,
        path: FieldPath,
        message: str,
        enterprise: str | None = None,
    ) -> Finding:
        file, line = self.sourcemap.locate(self.origin_of(key), path)
        finding = Finding(rule, severity, message, file, line, format_path(path), enterprise)
        self.report.findings.append(finding)
        return finding


def enterprise_key(code: str) -> str:
    return f"enterprise:{code}"


def city_key(code: str) -> str:
    return f"city:{code}"


_PYDANTIC_HINTS = {
    "missing": "this field is required",
    "extra_forbidden": "this field is not part of the inventory format (a typo?)",
    "finite_number": "must be a finite number (NaN and infinity are not values an instrument gives)",
}
_QUOTE_MAX = 60  # characters of a bad value quoted in a finding


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_MAX else text[: _QUOTE_MAX - 3] + "..."


def _schema_findings(inv: Inventory, key: str, exc: ValidationError, enterprise: str | None) -> None:
    for err in exc.errors():
        path = tuple(err["loc"])
        if err["type"] == "invalid_key" and path and path[-1] == "None":  # a tag table's row with extra cells
            inv.emit("SCHEMA", Severity.ERROR, key, path[:-1], "the row has more cells than the header names "
                     "columns", enterprise)
            continue
        hint = _PYDANTIC_HINTS.get(err["type"], err["msg"])
        got = f" (found {_quote(err['input'])})" if err["type"] not in ("missing",) and "input" in err else ""
        if err["type"] == "extra_forbidden" or isinstance(err.get("input"), dict | list):
            got = ""
        inv.emit("SCHEMA", Severity.ERROR, key, path, f"{hint}{got}", enterprise)


def _parse(inv: Inventory, key: str, file: Path, model: type[BaseModel], data: object, ent: str | None):
    if not isinstance(data, dict):
        inv.emit("SCHEMA", Severity.ERROR, key, (), f"{file.name} must hold a mapping of fields", ent)
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _schema_findings(inv, key, exc, ent)
        return None


def _cached(inv: Inventory, file: Path, parse: Callable[[Path], object]) -> object:
    """`parse(file)`, or its result remembered by the parse cache while the file is unchanged.
    A parse that fails is never cached (nor is anything else of that file kept): the next load
    reads the file again, so that a fix is seen at once."""
    cache = inv.parse_cache
    if cache.file is None:
        return parse(file)
    stamp = cache.stamps.pop(str(file), None) or stamp_of(file.stat())
    hit, data = cache.get(file, stamp)
    if hit:
        return data
    try:
        data = parse(file)
    except Exception:
        cache.forget(file)
        raise
    cache.put(file, stamp, data)
    return data


def _file_finding(inv: Inventory, file: Path, rule: str, message: str, line: int | None = None,
                  path: FieldPath = (), enterprise: str | None = None) -> None:
    inv.report.findings.append(
        Finding(rule, Severity.ERROR, message, file, line, format_path(path), enterprise)
    )


def _read(inv: Inventory, file: Path, what: str) -> tuple[bool, object]:
    """(True, content) of a YAML file, or (False, None) with its findings emitted. An empty file
    (or one of comments only) is an error: `what` it should describe would silently vanish."""
    try:
        data = _cached(inv, file, read_yaml)
    except FileProblem as exc:
        for p in exc.problems:
            _file_finding(inv, file, exc.rule, p.message, p.line, p.path)
        return False, None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        _file_finding(inv, file, "SCHEMA", f"not valid YAML: {problem}", line)
        return False, None
    except OSError as exc:
        _file_finding(inv, file, "SCHEMA", f"cannot read: {exc.strerror or exc}")
        return False, None
    if data is None:
        _file_finding(inv, file, "SCHEMA",
                      f"the file is empty (or holds only comments): it must describe {what}; a file that "
                      "is meant to go must be deleted, so that nothing vanishes by mistake")
        return False, None
    return True, data


def _table_path(efile: Path, name: str, place: Place, names: dict[str, Kind]) -> Path | str:
    """Where a data source's `tag_table` lies, or why it may not be read (rule REF): a table is a
    .csv file inside the inventory, named relative to its enterprise file."""
    if "\0" in name:
        return f"tag table {_quote(name)} holds a NUL character"
    # (String tests, not PurePath objects: this runs for every table, 10,000 at national scale.)
    if name.startswith(("/", "\\")) or name[1:2] == ":":  # POSIX or Windows root, or a drive letter
        return (f"tag table {_quote(name)} is an absolute path: name a file inside the inventory, "
                "relative to the enterprise file")
    if not name.lower().endswith(".csv"):
        return f"tag table {_quote(name)} is not a .csv file: a tag table is CSV, as DCS tools export it"
    key = f"{os.path.dirname(efile)}/{name}"
    if names.get(key) is Kind.FILE:
        return Path(key)  # a plain file of the folder listing (the usual case): inside, no system call
    table = efile.parent / name
    if not place.inside(table):
        return (f"tag table {_quote(name)} lies outside the inventory (through '..' or a symbolic link): "
                "tag tables must be inside it, and nothing outside is read")
    return table


def _attach_tag_tables(inv: Inventory, key: str, code: str, file: Path, data: dict,
                       names: dict[str, Kind]) -> Origin:
    """Inline each data source's CSV tag table so the model sees one tree; remember the file."""
    tables: list[tuple[FieldPath, Path]] = []
    sources = data.get("data_sources")
    for i, src in enumerate(sources if isinstance(sources, list) else ()):
        if not isinstance(src, dict) or not src.get("tag_table") or not isinstance(src["tag_table"], str):
            continue  # no table, or one the model refuses (a tag_table that is not text)
        where: FieldPath = ("data_sources", i, "tag_table")
        name = src["tag_table"]
        table = _table_path(file, name, inv.place, names)
        if isinstance(table, str):
            inv.emit("REF", Severity.ERROR, key, where, table, code)
            continue
        try:
            rows = _cached(inv, table, read_tag_table)
        except FileProblem as exc:
            for p in exc.problems:
                if p.line is None:  # the file as a whole: fixed where it is named
                    inv.emit(exc.rule, Severity.ERROR, key, where, f"tag table {_quote(name)}: {p.message}", code)
                else:
                    _file_finding(inv, table, exc.rule, p.message, p.line, p.path, code)
            continue
        except OSError as exc:
            inv.emit("REF", Severity.ERROR, key, where, f"tag table {_quote(name)}: cannot read: "
                     f"{exc.strerror or exc}", code)
            continue
        tags = src.get("tags") or []
        if not isinstance(tags, list):
            continue  # the model reports `tags`
        src["tags"] = [*tags, *rows]  # type: ignore[list-item]
        tables.append((("data_sources", i, "tags"), table))
    return Origin(file, tuple(tables))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC. Loading builds millions of objects that all stay alive (440,000 tags
    at national scale): the GC would rescan them again and again for nothing (it cost 2/3 of the
    model time, and as much again in the rules). Cyclic garbage, if any, is collected later."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            # Hand what was built straight to the oldest generation (two O(1) list moves), so the
            # next young collection does not walk millions of objects once more.
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def load(root: Path | str, *, parse_cache: ParseCache | None = None, link_roots: tuple[Path, ...] = ()) -> Inventory:
    """Load and type-check an inventory; schema problems go to `inv.report`, never raise.

    Files unchanged since an earlier load come from the parse cache (parsecache.py). Without a
    `parse_cache`, the folder's own is used and saved; with one, saving it is the caller's job
    (validate saves once, after the rules have looked up their findings' lines). Symbolic links
    may lead inside the inventory, or into `link_roots` (an overlay of links into an inventory)."""
    path = Path(root).resolve()
    with gc_paused():
        cache = parse_cache if parse_cache is not None else ParseCache.for_root(path)
        inv = _load(path, cache, Place((path, *(Path(r).resolve() for r in link_roots))))
        if parse_cache is None:
            cache.save()
        return inv


def _load(root: Path, cache: ParseCache, place: Place) -> Inventory:
    inv = Inventory(root, sourcemap=SourceMap(cache=cache), parse_cache=cache, place=place)
    if not root.is_dir():
        inv.report.findings.append(
            Finding("SCHEMA", Severity.ERROR, "no such inventory folder", root, None, "")
        )
        return inv

    city_dirs = _city_dirs(inv)
    # Each enterprises folder listed once: what is a plain file, a folder, a link (no extra stat).
    names = {city_dir: listing(city_dir / ENTERPRISES_DIR) for city_dir in city_dirs}
    # A cold cache: parse on every core first (tag tables are found by name, not by reference).
    # Only plain files: links and anything odd are left to the loader's checks.
    prefetch(cache, [Path(name) for found in names.values() for name, kind in found.items()
                     if kind is Kind.FILE and name.endswith((".yml", ".csv"))])

    pfile = root / PROVINCE_FILE
    inv.origins["province"] = Origin(pfile)
    if not os.path.lexists(pfile):
        _file_finding(inv, pfile, "SCHEMA", f"missing {PROVINCE_FILE}")
    elif not inv.place.inside(pfile):
        _file_finding(inv, pfile, "REF", _OUTSIDE)
    else:
        ok, data = _read(inv, pfile, "the province")
        if ok:
            wrapped = isinstance(data, dict) and "province" in data
            inner = data["province"] if wrapped else data  # type: ignore[index]
            if wrapped:
                inv.origins["province"] = Origin(pfile, prefix=("province",))
            inv.province = _parse(inv, "province", pfile, Province, inner, None)

    for city_dir in city_dirs:
        _load_city(inv, city_dir, names[city_dir])
    return inv


_OUTSIDE = ("a symbolic link to a place outside the inventory: not read (inventory files must be inside "
            "the inventory folder)")


def _city_dirs(inv: Inventory) -> list[Path]:
    """The city folders (links to folders inside the inventory count; any other is an error)."""
    top = inv.root / CITIES_DIR
    if not os.path.lexists(top):
        return []
    if not top.is_dir() or not inv.place.inside(top):
        _file_finding(inv, top, "SCHEMA" if top.exists() else "REF",
                      f"{CITIES_DIR} must be a folder inside the inventory")
        return []
    try:
        with os.scandir(top) as it:
            found = sorted(Path(e.path) for e in it if e.is_dir())
    except OSError as exc:
        _file_finding(inv, top, "SCHEMA", f"the folder cannot be listed: {exc.strerror or exc}; none of its "
                      "cities is read")
        return []
    out = []
    for city_dir in found:
        if city_dir.is_symlink() and not inv.place.inside(city_dir):
            _file_finding(inv, city_dir, "REF", _OUTSIDE)
            continue
        out.append(city_dir)
    return out


def _load_city(inv: Inventory, city_dir: Path, names: dict[str, Kind]) -> None:
    cfile = city_dir / CITY_FILE
    code_hint = city_dir.name.split("-", 1)[0]
    key = city_key(code_hint)
    inv.origins[key] = Origin(cfile)
    if not os.path.lexists(cfile):
        _file_finding(inv, cfile, "SCHEMA", f"city folder without {CITY_FILE}")
    elif cfile.is_symlink() and not inv.place.inside(cfile):
        _file_finding(inv, cfile, "REF", _OUTSIDE)
    else:
        ok, data = _read(inv, cfile, "the city")
        city = _parse(inv, key, cfile, City, data, None) if ok else None
        if city is not None:
            if city.code != code_hint:
                inv.emit(
                    "REF", Severity.ERROR, key, ("code",),
                    f"city code {city.code} does not match its folder {city_dir.name}",
                )
            inv.cities[city.code] = city
            inv.city_dirs[city.code] = city_dir

    edir = city_dir / ENTERPRISES_DIR
    if os.path.lexists(edir) and not edir.is_dir():
        _file_finding(inv, edir, "SCHEMA", f"{ENTERPRISES_DIR} must be a folder of enterprise files")
    for name, kind in names.items():
        if kind is Kind.UNREADABLE:
            _file_finding(inv, Path(name), "SCHEMA", "the folder cannot be listed (permission denied?): the "
                          "enterprise files in it are not read")
        elif kind is Kind.LINK and not name.endswith((".yml", ".csv")) and os.path.isdir(name):
            _file_finding(inv, Path(name), "SCHEMA", "a symbolic link to a folder: not followed (keep enterprise "
                          "files in the inventory itself)")
        elif name.endswith(".yaml"):
            _file_finding(inv, Path(name), "SCHEMA", "not read: enterprise files end in .yml (rename it, or the "
                          "enterprise it describes is missing from the inventory)")

    for efile in sorted(Path(name) for name in names if name.endswith(".yml")):
        kind = names[str(efile)]
        if kind is Kind.DIR:
            _file_finding(inv, efile, "SCHEMA", "a folder named like an enterprise file: enterprise files are "
                          "YAML files")
            continue
        if kind is Kind.LINK and not inv.place.inside(efile):
            _file_finding(inv, efile, "REF", _OUTSIDE)
            continue
        _load_enterprise(inv, efile, code_hint, names)


def _load_enterprise(inv: Inventory, efile: Path, code_hint: str, names: dict[str, Kind]) -> None:
    root = inv.root
    start = len(inv.report.findings)
    ok, data = _read(inv, efile, "one enterprise")
    if not ok:
        return
    code = str(data.get("code", efile.stem)) if isinstance(data, dict) else efile.stem
    ekey = enterprise_key(code)
    if ekey in inv.origins:
        other = inv.origins[ekey].file
        inv.origins[ekey + f"@{efile}"] = Origin(efile)
        inv.emit(
            "UNIQ", Severity.ERROR, ekey + f"@{efile}", ("code",),
            f"enterprise code {_quote(code)} is already used by {other.relative_to(root)}", code,
        )
        return
    inv.origins[ekey] = Origin(efile)  # where the tag table findings of the next line point
    if isinstance(data, dict):
        inv.origins[ekey] = _attach_tag_tables(inv, ekey, code, efile, data, names)
    ent = _parse(inv, ekey, efile, Enterprise, data, code)
    if ent is None:
        named = any(f.file == efile and f.severity is Severity.ERROR for f in inv.report.findings[start:])
        if not named:  # every error is in a tag table: say here that the enterprise is left out
            inv.emit("SCHEMA", Severity.ERROR, ekey, ("data_sources",),
                     "the enterprise is not loaded: its tag table has errors (reported in the table)", code)
        return
    if ent.city != code_hint:
        inv.emit(
            "REF", Severity.ERROR, ekey, ("city",),
            f"enterprise says city {ent.city} but lives in the folder of city {code_hint}",
            ent.code,
        )
    inv.enterprises.append(ent)
