"""The collector's wheelhouse (hazmon.rollout.wheelhouse): what goes in, the cache key, reproducible
tars; and, against PyPI and a real venv, that a gateway can install and start from it offline."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from hazmon.rollout import wheelhouse as wh

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "src" / "hazmon" / "collector"
INSTALL = ROOT / "roles" / "collector" / "files" / "install-wheelhouse.sh"


# ---------------------------------------------------------------- what the collector imports


def test_static_imports_split_module_level_from_lazy(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text(textwrap.dedent("""\
        from __future__ import annotations
        import json, os.path
        import yaml
        from paho.mqtt import client
        from hazmon.wire import topic

        def connect():
            from asyncua import Client
            import yaml  # also module level in this package: stays eager
            return Client
        """))
    (pkg / "b.py").write_text("async def f():\n    import serial.tools\n")
    (pkg / "render.py").write_text("import openpyxl\n")  # control-node only: skipped
    eager, lazy = wh.static_imports(pkg)
    assert eager == {"yaml", "paho"}
    assert lazy == {"asyncua", "serial"}


def test_static_imports_of_the_real_collector() -> None:
    eager, lazy = wh.static_imports(COLLECTOR)
    assert {"pymodbus", "paho", "pydantic", "yaml", "prometheus_client"} <= eager
    assert lazy == {"asyncua"}  # imported only where an OPC UA source connects
    assert not {"openpyxl", "netmiko", "ansible", "hazmon"} & (eager | lazy)


def test_select_requirements_takes_pyproject_pins_in_order() -> None:
    deps = ["ansible-core>=2.19,<2.20", "pydantic>=2.10,<3", "pymodbus==3.16.1", "pyserial>=3.5", "rich>=13"]
    dist_of = {"pydantic": ["pydantic"], "pymodbus": ["pymodbus"], "serial": ["pyserial"],
               "pydantic_core": ["pydantic_core"], "rich": ["rich"]}
    got = wh.select_requirements(deps, static={"pymodbus", "pydantic"},
                                 runtime={"pymodbus", "pydantic", "pydantic_core", "serial"}, dist_of=dist_of)
    # pyserial: imported by pymodbus at run time and declared, so pinned from pyproject; pydantic_core:
    # not declared, left to pip; rich and ansible-core: the collector never imports them.
    assert got == ["pydantic>=2.10,<3", "pymodbus==3.16.1", "pyserial>=3.5"]


def test_select_requirements_refuses_an_undeclared_import_of_the_collector() -> None:
    with pytest.raises(wh.WheelhouseError, match=r"imports 'requests'.*declare it"):
        wh.select_requirements(["pymodbus==3.16.1"], static={"pymodbus", "requests"}, runtime=set(),
                               dist_of={"pymodbus": ["pymodbus"], "requests": ["requests"]})


def test_lazy_requirements_split_what_only_opc_needs() -> None:
    reqs = ["pydantic>=2.10,<3", "asyncua==2.1.0", "pymodbus==3.16.1"]
    dist_of = {"asyncua": ["asyncua"], "pydantic": ["pydantic"], "pymodbus": ["pymodbus"]}
    base, optional = wh.lazy_requirements(reqs, {"asyncua"}, dist_of)
    assert base == ["pydantic>=2.10,<3", "pymodbus==3.16.1"]
    assert optional == ["asyncua==2.1.0"]
    # A lazy import no protocol claims counts as needed everywhere.
    base, optional = wh.lazy_requirements(reqs, {"pymodbus"}, dist_of)
    assert optional == [] and base == reqs


# ---------------------------------------------------------------- key and sources


def _project(tmp_path: Path) -> Path:
    """A copy of the checkout's sources: the key of a tree nobody else edits during the test."""
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(ROOT / "src" / "hazmon", root / "src" / "hazmon",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def test_source_files_and_digest(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "src" / "hazmon" / "__pycache__").mkdir(exist_ok=True)
    (root / "src" / "hazmon" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (root / "src" / "hazmon.egg-info").mkdir()
    (root / "src" / "hazmon.egg-info" / "PKG-INFO").write_text("x")
    files = wh.source_files(root)
    assert Path("pyproject.toml") in files and Path("src/hazmon/collector/main.py") in files
    assert not [f for f in files if "__pycache__" in f.parts or "egg-info" in str(f)]
    before = wh.tree_digest(root, files)
    assert wh.tree_digest(root, files) == before
    (root / "src" / "hazmon" / "wire.py").write_text("# changed\n", encoding="utf-8")
    assert wh.tree_digest(root, files) != before


def test_cache_key_follows_sources_and_installed_versions() -> None:
    k = wh.cache_key("a" * 64, {"pydantic": "2.14.4"})
    assert k == wh.cache_key("a" * 64, {"pydantic": "2.14.4"})
    assert k != wh.cache_key("b" * 64, {"pydantic": "2.14.4"})
    assert k != wh.cache_key("a" * 64, {"pydantic": "2.14.5"})


def test_project_root_finds_the_checkout(tmp_path: Path) -> None:
    assert wh.project_root() == ROOT
    with pytest.raises(wh.WheelhouseError, match="no hazmon checkout"):
        wh.project_root(tmp_path)


def test_analyse_selects_what_the_gateway_runs() -> None:
    found = wh.analyse(ROOT)
    files = {str(f) for f in found.files}
    assert {"pyproject.toml", "src/hazmon/__init__.py", "src/hazmon/wire.py", "src/hazmon/inventory/model.py",
            "src/hazmon/collector/service.py", "src/hazmon/collector/main.py"} <= files
    assert "src/hazmon/collector/render.py" not in files  # control node only
    assert not [f for f in files if f.startswith(("src/hazmon/lab/", "src/hazmon/cli/", "src/hazmon/tables/"))]
    assert {"serial", "paho", "pymodbus"} <= found.runtime and found.lazy == {"asyncua"}


def test_stage_sources_labels_the_version(tmp_path: Path) -> None:
    root = _project(tmp_path)
    stage = tmp_path / "stage"
    wh.stage_sources(root, wh.source_files(root), stage, "src.0123456789ab")
    text = (stage / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = "0.1.0+src.0123456789ab"' in text
    assert 'target-version = "py311"' in text  # only [project]'s version line is touched
    # Only the collector's console script: the others import modules a gateway does not get.
    assert 'hazmon-collector = "hazmon.collector.main:main"' in text
    assert "hazmon-tracker =" not in text and 'hazmon = "' not in text
    assert 'requires-python = ">=3.11"' in text
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\ndynamic = ['version']\n")
    with pytest.raises(wh.WheelhouseError, match="no static"):
        wh.stage_sources(root, [Path("pyproject.toml")], tmp_path / "stage2", "src.x")


# ---------------------------------------------------------------- lock and tar


def test_lock_and_tar_are_reproducible(tmp_path: Path) -> None:
    whl = tmp_path / "demo_pkg-1.2.3-py3-none-any.whl"
    whl.write_bytes(b"not really a zip")
    other = tmp_path / "Zeta-0.1-py3-none-any.whl"
    other.write_bytes(b"z")
    lines = wh.lock_lines([other, whl])
    assert lines == [
        f"demo-pkg==1.2.3 --hash=sha256:{hashlib.sha256(b'not really a zip').hexdigest()}",
        f"zeta==0.1 --hash=sha256:{hashlib.sha256(b'z').hexdigest()}",
    ]
    lock = "\n".join(lines) + "\n"
    wh.write_tar(lock, [whl, other], tmp_path / "a.tar")
    whl.touch()  # a newer mtime must not change the tar
    wh.write_tar(lock, [other, whl], tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["requirements.txt", f"wheels/{other.name}", f"wheels/{whl.name}"]
        member = tar.getmember("requirements.txt")
        assert (member.uid, member.mtime, member.mode) == (0, wh.EPOCH, 0o644)
        assert tar.extractfile(member).read().decode() == lock


def test_prune_keeps_the_current_and_the_most_recent(tmp_path: Path) -> None:
    for i, name in enumerate(["k1", "k2", "k3", "k4", "k5", "cur"]):
        (tmp_path / name).mkdir()
        manifest = tmp_path / name / wh.MANIFEST_NAME
        manifest.write_text("{}")
        os.utime(manifest, (1000 + i, 1000 + i))
    (tmp_path / "cur" / wh.MANIFEST_NAME).touch()
    wh.prune(tmp_path, "cur", keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cur", "k4", "k5"]


# ---------------------------------------------------------------- the real build (PyPI, pip, a venv)


@pytest.mark.integration
def test_build_cache_and_offline_install(tmp_path: Path) -> None:
    root = _project(tmp_path)
    cache = tmp_path / "cache"
    first = wh.ensure(root, cache)
    assert first.built
    full, minimal = first.profiles["full"], first.profiles["minimal"]
    assert first.lazy_protocols == ["opc"]
    assert first.hazmon_version.startswith("0.1.0+src.")
    assert any(w.startswith("asyncua-2.1.0") for w in full.wheels)
    assert not any(w.startswith(("asyncua", "cryptography")) for w in minimal.wheels)
    assert {w.split("-")[0] for w in minimal.wheels} >= {
        "hazmon", "pymodbus", "paho_mqtt", "pydantic", "pydantic_core", "pyyaml", "prometheus_client", "pyserial"}
    assert not any(w.split("-")[0] in ("ansible_core", "netmiko", "openpyxl", "rich") for w in full.wheels)
    assert minimal.bytes < full.bytes / 2
    assert first.profile_for(["modbus_tcp"]) is minimal and first.profile_for(["modbus_rtu", "opc"]) is full

    # Warm: same key, nothing built, same bytes.
    again = wh.ensure(root, cache)
    assert not again.built and again.key == first.key
    assert again.profiles["minimal"].lock_sha256 == minimal.lock_sha256

    # A gateway installs the minimal profile offline with the role's own script (pip from its wheel in
    # the tar, a venv without pip), and the collector starts as far as its config.
    with tarfile.open(first.path / minimal.tar) as tar:
        names = tar.getnames()
    assert names[0] == "requirements.txt" and any(n.startswith("tools/pip-") for n in names)
    venv, stamp = tmp_path / "venv", tmp_path / "venv" / ".wheelhouse-x"
    copied = shutil.copy(first.path / minimal.tar, tmp_path / "wheelhouse.tar")
    env = {"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"}
    done = subprocess.run(["sh", str(INSTALL), str(venv), str(copied), first.python, str(stamp)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert stamp.exists() and not (venv / "bin" / "pip").exists()
    assert not Path(copied).exists()  # the gateway keeps the venv, not the tar
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.metadata as m, hazmon.collector.service, serial; print(m.version('hazmon'))"],
        capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == first.hazmon_version
    bad = subprocess.run([str(venv / "bin" / "hazmon-collector"), "--check", "-c", str(tmp_path / "none.yml")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read the collector config" in bad.stderr
    # A gateway whose python3 is not the wheelhouse's refuses before touching anything.
    other = subprocess.run(["sh", str(INSTALL), str(tmp_path / "v2"), str(tmp_path / "any.tar"), "3.9",
                            str(tmp_path / "s2")], capture_output=True, text=True, env=env)
    assert other.returncode == 3 and "built for 3.9" in other.stderr and not (tmp_path / "v2").exists()

    # An edit outside what the gateway runs (the lab): the same wheelhouse, nothing for gateways to do.
    plan = root / "src" / "hazmon" / "lab" / "plan.py"
    plan.write_text(plan.read_text() + "\n# changed\n")
    elsewhere = wh.ensure(root, cache)
    assert not elsewhere.built and elsewhere.key == first.key
    assert elsewhere.profiles["minimal"].lock_sha256 == minimal.lock_sha256

    # A changed source of the collector: a new key, a new hazmon version, the dependencies' wheels unchanged.
    (root / "src" / "hazmon" / "collector" / "backoff.py").write_text(
        (root / "src" / "hazmon" / "collector" / "backoff.py").read_text() + "\n# changed\n")
    changed = wh.ensure(root, cache)
    assert changed.built and changed.key != first.key and changed.hazmon_version != first.hazmon_version
    assert [w for w in changed.profiles["full"].wheels if not w.startswith("hazmon-")] == \
        [w for w in full.wheels if not w.startswith("hazmon-")]

    # The command line prints the same facts as JSON, and --out copies the wheelhouse.
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "hazmon.rollout.wheelhouse", "--project", str(root), "--cache", str(cache),
         "--out", str(out)], capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)
    assert data["key"] == changed.key and data["built"] is False
    assert (out / minimal.tar).exists() and (out / "manifest.json").exists()
