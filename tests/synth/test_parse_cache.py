"""The parse cache (hazmon.inventory.parsecache): an unchanged file is not parsed again, a changed
one always is, and validation gives the same model and findings (file, line, rule) either way."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest

from hazmon.inventory.parsecache import ParseCache
from hazmon.inventory.validate import validate

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
CHEM = "cities/5101-chengdu/enterprises/labe0001-chem.yml"
DEPOT_CSV = "cities/5101-chengdu/enterprises/labe0004-depot.tags.csv"
OLD = time.time() - 3600  # older than the racy window: such files are cached


def _age(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAZMON_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "lab"
    shutil.copytree(LAB, root)
    _age(root)
    return root


def _outcome(root: Path) -> tuple[list, list, int, int]:
    inv, readiness = validate(root)
    findings = [(str(f.file), f.line, f.rule, f.message, f.path) for f in inv.report.findings]
    model = [e.model_dump() for e in inv.enterprises]
    assert [r.lifecycle for r in readiness]  # readiness is derived from the cached parse too
    return findings, model, inv.parse_cache.hits, inv.parse_cache.misses


def test_warm_run_parses_nothing_and_gives_the_same_model_findings_and_lines(lab: Path):
    cold_findings, cold_model, hits, misses = _outcome(lab)
    assert hits == 0 and misses > 0
    warm_findings, warm_model, hits, misses = _outcome(lab)
    assert misses == 0 and hits > 0
    assert warm_findings == cold_findings and any(line for _, line, *_ in warm_findings)
    assert warm_model == cold_model
    # YAML dates come back as the same date objects (marshal cannot hold them as they are).
    chem = next(e for e in warm_model if e["code"] == "91510100MALABE0001")
    assert isinstance(chem["line"]["measured_on"], dt.date)


def test_a_changed_yaml_file_is_parsed_again(lab: Path):
    _outcome(lab)
    file = lab / CHEM
    text = file.read_text(encoding="utf-8")
    file.write_text(text.replace("contracted_mbps: 20", "contracted_mbps: 2", 1), encoding="utf-8")
    findings, _, _, misses = _outcome(lab)
    assert misses == 1
    assert any(rule == "N2" and f.endswith("labe0001-chem.yml") and "contracted at 2 Mbps" in msg
               for f, _, rule, msg, _ in findings)


def test_a_same_size_edit_with_a_new_mtime_is_seen(lab: Path):
    _outcome(lab)
    file = lab / CHEM
    text = file.read_text(encoding="utf-8")
    edited = text.replace("contracted_mbps: 20", "contracted_mbps: 10", 1)
    assert len(edited.encode()) == len(text.encode())
    file.write_text(edited, encoding="utf-8")
    os.utime(file, (OLD + 5, OLD + 5))  # old enough to be cached again, but not the cached stamp
    findings, _, _, misses = _outcome(lab)
    assert misses == 1
    assert any(rule == "N2" and "contracted at 10 Mbps" in msg for _, _, rule, msg, _ in findings)


def test_a_changed_tag_table_is_parsed_again(lab: Path):
    _outcome(lab)
    csv_file = lab / DEPOT_CSV
    lines = csv_file.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("code")] = "ZZ-NEW-1"
    csv_file.write_text("\n".join([*lines, ",".join(row)]) + "\n", encoding="utf-8")
    inv, _ = validate(lab)
    codes = [t.code for e in inv.enterprises for s in e.data_sources for t in s.tags]
    assert "ZZ-NEW-1" in codes
    assert inv.parse_cache.misses == 1


def test_deleting_the_cache_gives_the_same_result(lab: Path, tmp_path: Path):
    first = _outcome(lab)
    _outcome(lab)
    shutil.rmtree(tmp_path / "cache")
    again = _outcome(lab)
    assert again[:2] == first[:2]
    assert again[2] == 0  # nothing was left to hit


def test_a_racily_new_file_is_not_cached(lab: Path):
    file = lab / CHEM
    os.utime(file, None)  # modified just now: a same-size edit could follow within the clock's tick
    _outcome(lab)
    _, _, hits, misses = _outcome(lab)
    assert misses == 1 and hits > 0


def test_a_broken_cache_file_is_ignored(lab: Path, tmp_path: Path):
    first = _outcome(lab)
    for cache_file in (tmp_path / "cache").rglob("*.marshal"):
        cache_file.write_bytes(b"not marshal at all")
    again = _outcome(lab)
    assert again[:2] == first[:2] and again[2] == 0


def test_cache_can_be_switched_off(lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HAZMON_CACHE_DIR", "off")
    assert ParseCache.for_root(lab).file is None
    _outcome(lab)
    _, _, hits, _ = _outcome(lab)
    assert hits == 0
    assert not (tmp_path / "cache").exists()


def test_only_the_most_recent_folders_are_kept(lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("hazmon.inventory.parsecache.MAX_FOLDERS", 2)
    copies = []
    for i in range(3):
        copy = tmp_path / f"copy{i}"
        shutil.copytree(lab, copy)
        _age(copy)
        copies.append(copy)
        _outcome(copy)
    kept = {f.name for f in (tmp_path / "cache" / "parse").glob("*.marshal")}
    assert len(kept) == 2
    assert ParseCache.for_root(copies[-1]).file.name in kept


def test_a_malformed_file_is_never_cached_and_its_fix_is_seen_at_once(lab: Path):
    _outcome(lab)  # the cache holds every file
    file = lab / CHEM
    good, stamp = file.read_bytes(), file.stat()
    file.write_bytes(good.replace(b"batch: 1\n", b"batch: 1\nbatch: 2\n", 1))  # a duplicate key: refused
    os.utime(file, (OLD + 10, OLD + 10))  # old enough to be cached, were it ever
    for _ in range(2):  # cold, then warm: the refusal is not remembered as content, nor is the old content served
        inv, _ = validate(lab)
        assert [(f.rule, f.path) for f in inv.report.errors if f.file == file] == [("SCHEMA", "batch")]
        assert str(file) not in inv.parse_cache.entries
    file.write_bytes(good)  # the fix, in place: same inode, size and mtime as when it was cached
    os.utime(file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    inv, _ = validate(lab)
    assert inv.report.errors == [] and len(inv.enterprises) == 7


def test_a_tag_table_named_like_a_yaml_file_does_not_read_its_cached_content(lab: Path):
    _outcome(lab)  # the cache holds labe0001-chem.yml's YAML content under its path
    depot = lab / DEPOT_CSV.replace(".tags.csv", ".yml")
    depot.write_text(depot.read_text(encoding="utf-8").replace("labe0004-depot.tags.csv", "labe0001-chem.yml"),
                     encoding="utf-8")
    inv, _ = validate(lab)
    assert [(f.rule, f.path) for f in inv.report.errors if f.file == depot] == [
        ("D1c", "data_sources[0].tags"), ("REF", "data_sources[0].tag_table")]
    chem = inv.enterprise("labe0001")
    assert chem is not None and len(chem.data_sources[0].tags) == 8


def test_a_damaged_cache_entry_is_a_miss(lab: Path):
    first = _outcome(lab)
    cache = ParseCache.for_root(lab.resolve())
    file = str((lab / CHEM).resolve())
    stamp, _blob, dates, lines = cache.entries[file]
    cache.entries[file] = (stamp, b"not marshal data", dates, lines)  # right stamp, wrong content
    cache.used.update(cache.entries)  # save() keeps the entries used this time
    cache.dirty = True
    cache.save()
    again = _outcome(lab)
    assert again[:2] == first[:2] and again[3] == 1
