"""Read an inventory tree into the typed model, turning every schema problem into a finding.

Layout (one folder per city, one file per enterprise, so a city team owns its folder):

    inventories/<env>/province.yml
    inventories/<env>/cities/<code>-<name>/city.yml
    inventories/<env>/cities/<code>-<name>/enterprises/<anything>.yml
    inventories/<env>/cities/<code>-<name>/enterprises/<anything>.csv   (tag tables, optional)
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from hazmon.inventory.findings import FieldPath, Finding, Report, Severity, format_path
from hazmon.inventory.model import City, Enterprise, Province
from hazmon.inventory.parallel import inventory_files, prefetch
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
}


def _schema_findings(inv: Inventory, key: str, exc: ValidationError, enterprise: str | None) -> None:
    for err in exc.errors():
        path = tuple(err["loc"])
        hint = _PYDANTIC_HINTS.get(err["type"], err["msg"])
        got = f" (found {err['input']!r})" if err["type"] not in ("missing",) and "input" in err else ""
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
    """`parse(file)`, or its result remembered by the parse cache while the file is unchanged."""
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


def _read(inv: Inventory, key: str, file: Path) -> object:
    try:
        return _cached(inv, file, read_yaml)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        inv.report.findings.append(
            Finding("SCHEMA", Severity.ERROR, f"not valid YAML: {problem}", file, line, "", None)
        )
    except OSError as exc:
        inv.report.findings.append(Finding("SCHEMA", Severity.ERROR, f"cannot read: {exc}", file, None, ""))
    return None


def _attach_tag_tables(inv: Inventory, key: str, file: Path, data: dict) -> Origin:
    """Inline each data source's CSV tag table so the model sees one tree; remember the file."""
    tables: list[tuple[FieldPath, Path]] = []
    for i, src in enumerate(data.get("data_sources") or []):
        if isinstance(src, dict) and src.get("tag_table"):
            table = file.parent / str(src["tag_table"])
            try:
                rows = _cached(inv, table, read_tag_table)  # type: ignore[assignment]
            except OSError as exc:
                inv.emit("SCHEMA", Severity.ERROR, key, ("data_sources", i, "tag_table"), f"cannot read: {exc}")
                continue
            src["tags"] = [*(src.get("tags") or []), *rows]
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


def load(root: Path | str, *, parse_cache: ParseCache | None = None) -> Inventory:
    """Load and type-check an inventory; schema problems go to `inv.report`, never raise.

    Files unchanged since an earlier load come from the parse cache (parsecache.py). Without a
    `parse_cache`, the folder's own is used and saved; with one, saving it is the caller's job
    (validate saves once, after the rules have looked up their findings' lines)."""
    path = Path(root).resolve()
    with gc_paused():
        cache = parse_cache if parse_cache is not None else ParseCache.for_root(path)
        inv = _load(path, cache)
        if parse_cache is None:
            cache.save()
        return inv


def _load(root: Path, cache: ParseCache) -> Inventory:
    inv = Inventory(root, sourcemap=SourceMap(cache=cache), parse_cache=cache)
    if not root.is_dir():
        inv.report.findings.append(
            Finding("SCHEMA", Severity.ERROR, "no such inventory folder", root, None, "")
        )
        return inv

    city_dirs = sorted((root / CITIES_DIR).glob("*/"))
    # A cold cache: parse on every core first (tag tables are found by name, not by reference).
    prefetch(cache, inventory_files([city_dir / ENTERPRISES_DIR for city_dir in city_dirs]))

    pfile = root / PROVINCE_FILE
    inv.origins["province"] = Origin(pfile)
    if pfile.exists():
        data = _read(inv, "province", pfile)
        if data is not None:
            wrapped = isinstance(data, dict) and "province" in data
            inner = data["province"] if wrapped else data
            if wrapped:
                inv.origins["province"] = Origin(pfile, prefix=("province",))
            inv.province = _parse(inv, "province", pfile, Province, inner, None)
    else:
        inv.report.findings.append(
            Finding("SCHEMA", Severity.ERROR, f"missing {PROVINCE_FILE}", pfile, None, "")
        )

    for city_dir in city_dirs:
        cfile = city_dir / CITY_FILE
        code_hint = city_dir.name.split("-", 1)[0]
        key = city_key(code_hint)
        inv.origins[key] = Origin(cfile)
        data = _read(inv, key, cfile) if cfile.exists() else None
        if not cfile.exists():
            inv.report.findings.append(
                Finding("SCHEMA", Severity.ERROR, f"city folder without {CITY_FILE}", cfile, None, "")
            )
        city = _parse(inv, key, cfile, City, data, None) if data is not None else None
        if city is not None:
            if city.code != code_hint:
                inv.emit(
                    "REF", Severity.ERROR, key, ("code",),
                    f"city code {city.code} does not match its folder {city_dir.name}",
                )
            inv.cities[city.code] = city
            inv.city_dirs[city.code] = city_dir

        for efile in sorted((city_dir / ENTERPRISES_DIR).rglob("*.yml")):
            data = _read(inv, "", efile)
            if data is None:
                continue
            code = str(data.get("code", efile.stem)) if isinstance(data, dict) else efile.stem
            ekey = enterprise_key(code)
            if ekey in inv.origins:
                other = inv.origins[ekey].file
                inv.origins[ekey + f"@{efile}"] = Origin(efile)
                inv.emit(
                    "UNIQ", Severity.ERROR, ekey + f"@{efile}", ("code",),
                    f"enterprise code {code} is already used by {other.relative_to(root)}", code,
                )
                continue
            inv.origins[ekey] = (
                _attach_tag_tables(inv, ekey, efile, data) if isinstance(data, dict) else Origin(efile)
            )
            ent = _parse(inv, ekey, efile, Enterprise, data, code)
            if ent is None:
                continue
            if ent.city != code_hint:
                inv.emit(
                    "REF", Severity.ERROR, ekey, ("city",),
                    f"enterprise says city {ent.city} but lives in the folder of city {code_hint}",
                    ent.code,
                )
            inv.enterprises.append(ent)
    return inv
