"""The one way device modules find what they configure: the validated model, by enterprise and name.

Cameras, channel IDs and switch ports are not Ansible hostvars on purpose (national-scale inventory
size): the modules load the model from the inventory folder, as every other consumer does.

A module runs once per device, each in a new process. Validating the whole national inventory
(7,000 enterprises) takes about 10 s and 1 GB in each of them, so the first process after an
inventory change validates it once (`load_valid`, every rule) and keeps each enterprise's
validated record, with the province, in a small JSON file; the others read only their own. The
cache is keyed by the inventory's fingerprint (every file's path, mtime and size, and the code
that derives the model: hazmon.inventory.ansible.fingerprint), so an edited inventory is
validated again before any device sees it; an invalid inventory is never cached. A lock makes the
30 forks that start together wait for the one that validates, instead of all validating.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hazmon.inventory.ansible import fingerprint
from hazmon.inventory.findings import InventoryError
from hazmon.inventory.model import Enterprise, Nvr, Province, Switch
from hazmon.inventory.parsecache import cache_root
from hazmon.inventory.validate import load_valid

FORMAT = 1
KEPT = 4  # inventory versions whose site cache is kept


class DeviceError(Exception):
    """A device cannot be configured: the message says which device, what went wrong, and the rule."""


@dataclass(frozen=True)
class SiteInventory:
    """What device modules need of the inventory besides the enterprise: its folder and the province."""

    root: Path
    province: Province | None


def _cache_dir(root: Path) -> Path | None:
    base = cache_root()
    if base is None:
        return None
    return base / "devices" / fingerprint(root)[:32]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _build(root: Path, cache: Path) -> None:
    """Validate the whole inventory once and keep every enterprise's record (the caller holds the lock)."""
    try:
        inv, _ = load_valid(root)
    except InventoryError as exc:
        raise DeviceError(f"inventory {root} is invalid (run `hazmon inventory validate`):\n{exc}") from None
    cache.mkdir(parents=True, exist_ok=True)
    index: dict[str, str] = {}
    for ent in inv.enterprises:
        _write(cache / f"{ent.code}.json", ent.model_dump_json(by_alias=True))
        for key in (ent.code, ent.slug, ent.name):
            index[key] = ent.code
    province = inv.province.model_dump(mode="json", by_alias=True) if inv.province else None
    _write(cache / "site.json", json.dumps({"format": FORMAT, "province": province, "index": index},
                                           ensure_ascii=False))
    siblings = sorted((p for p in cache.parent.iterdir() if p.is_dir() and p != cache),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for old in siblings[KEPT - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def _load_full(root: Path, enterprise: str) -> tuple[SiteInventory, Enterprise]:
    try:
        inv, _ = load_valid(root)
    except InventoryError as exc:
        raise DeviceError(f"inventory {root} is invalid (run `hazmon inventory validate`):\n{exc}") from None
    ent = inv.enterprise(enterprise)
    if ent is None:
        raise DeviceError(f"enterprise {enterprise}: not in the inventory {inv.root}")
    return SiteInventory(root=inv.root, province=inv.province), ent


def load_site(root: Path | str, enterprise: str) -> tuple[SiteInventory, Enterprise]:
    """The validated enterprise (code, slug or name) and the province, from the inventory at root."""
    root = Path(root).resolve()
    cache = _cache_dir(root)
    if cache is None:  # caching switched off (HAZMON_CACHE_DIR=off)
        return _load_full(root, enterprise)
    site = cache / "site.json"
    if not site.exists():
        with _locked(cache.parent / ".lock"):
            if not site.exists():  # another process may have built it while this one waited
                _build(root, cache)
    try:
        meta = json.loads(site.read_text(encoding="utf-8"))
        code = meta["index"].get(enterprise)
        if code is None:
            raise DeviceError(f"enterprise {enterprise}: not in the inventory {root}")
        ent = Enterprise.model_validate_json((cache / f"{code}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:  # pruned by a process that saw a newer inventory meanwhile
        return _load_full(root, enterprise)
    province = Province.model_validate(meta["province"]) if meta["province"] else None
    return SiteInventory(root=root, province=province), ent


def find_nvr(ent: Enterprise, name: str) -> Nvr:
    nvr = next((n for n in ent.devices.nvrs if n.name == name), None)
    if nvr is None:
        raise DeviceError(f"NVR {name}: enterprise {ent.code} records {[n.name for n in ent.devices.nvrs]}")
    return nvr


def find_switch(ent: Enterprise) -> Switch:
    if ent.devices.switch is None:
        raise DeviceError(f"enterprise {ent.code} records no monitoring switch (N6)")
    return ent.devices.switch
