"""The collector's wheelhouse: every wheel a gateway needs to install hazmon-collector offline.

Built on the control node, copied to each data-acquisition gateway as one tar, installed there with
`pip install --no-index --no-deps --require-hashes -r requirements.txt` (gateways reach no package
index: the e-government network carries only the notice's flows).

What goes in:
- the project's own wheel, cut to what the gateway runs (the modules the collector's entry points
  load and the hazmon.collector package, its only console script `hazmon-collector`) and versioned
  `<version>+src.<hash of those files>`: pip on the gateway reinstalls hazmon exactly when the
  collector's code changed, not when the lab's or the survey tables' did (and the collector's
  build-info metric says which sources it runs);
- the distributions the collector needs at run time and nothing else (no ansible-core, netmiko,
  openpyxl on a gateway): found from what `hazmon.collector` imports, their version specifiers taken
  from pyproject.toml (the one place pins live), resolved with pip against the control node's own
  installed versions as constraints, so that a gateway runs what the control node was tested with.

Two profiles: `full`, and `minimal` without what only some protocols need (asyncua and its
cryptography stack, imported by the collector only for an OPC UA source): a Modbus-only gateway
gets 4 MB instead of 11 and byte-compiles a third of the modules.

The result is cached under /var/cache/hazmon/wheelhouse/<key>, the key hashing the gateway's files,
pyproject.toml, the interpreter and the installed versions; a hash of the whole tree points to it
(by-tree/), so a re-run with nothing changed costs a hash of the tree (~0.1 s), and an edit
elsewhere one import analysis (~1 s) that finds the same wheelhouse.

Each profile's tar holds `requirements.txt`, pinning every wheel by version and sha256, `wheels/`,
and `tools/pip-*.whl`, the installer the gateway runs from its wheel (so neither Debian's
python3-venv nor a pip in the venv is needed); the lock's own sha256 is what the role keys the
gateway's install on.

    python -m hazmon.rollout.wheelhouse [--out DIR] [--cache DIR] [--project DIR] [--rebuild]

prints one JSON object (see `Wheelhouse.as_json`).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

DEFAULT_CACHE = Path("/var/cache/hazmon/wheelhouse")
FORMAT = 3  # bump when the layout below changes: part of the key
RUNTIME_PACKAGE = "hazmon.collector"
# Modules of the collector package that only the control node runs (they read the inventory).
CONTROL_ONLY = frozenset({"render"})
# What a gateway imports when the service starts; third-party modules the collector imports
# lazily (asyncua, only at OPC sites) are found by the static scan and imported too.
ENTRY_MODULES = ("hazmon.collector.main", "hazmon.collector.service")
# Third-party modules the collector imports lazily, for one protocol only (the `minimal` profile
# leaves them and whatever only they need out). A lazy import not listed here counts as needed.
LAZY_BY_PROTOCOL = {"asyncua": "opc"}
KEEP = 3  # cache entries kept besides the current one
LOCK_NAME = "requirements.txt"
TREE_INDEX = "by-tree"  # whole-tree key -> wheelhouse key
MANIFEST_NAME = "manifest.json"
# Reproducible wheel and tar timestamps (1980-01-01, the earliest a zip can hold).
EPOCH = 315532800
_SKIP_DIRS = frozenset({"__pycache__", "build", "dist"})


class WheelhouseError(RuntimeError):
    """The wheelhouse cannot be built; the message says what to fix."""


@dataclass
class Profile:
    """One installable set: a tar of requirements.txt + wheels/."""

    name: str
    tar: str  # file name inside the wheelhouse directory
    lock_sha256: str  # sha256 of its requirements.txt: changes exactly when one of its wheels does
    wheels: list[str]
    bytes: int = 0


@dataclass
class Wheelhouse:
    key: str
    path: Path
    hazmon_version: str
    python: str  # "3.11": the gateway's python3 must be the same minor version
    platform: str  # sysconfig platform, e.g. linux-x86_64
    requirements: list[str]  # the runtime requirements, as pyproject.toml states them
    lazy_protocols: list[str]  # a gateway with a source of one of these needs the full profile
    profiles: dict[str, Profile] = field(default_factory=dict)
    built: bool = False
    seconds: float = 0.0

    def profile_for(self, protocols: Iterable[str]) -> Profile:
        return self.profiles["full" if set(protocols) & set(self.lazy_protocols) else "minimal"]

    def as_json(self) -> dict[str, object]:
        out = asdict(self)
        out["path"] = str(self.path)
        for prof in out["profiles"].values():
            prof["tar"] = str(self.path / prof["tar"])
        return out


# ---------------------------------------------------------------- inputs


def project_root(start: Path | None = None) -> Path:
    """The checkout holding pyproject.toml (this file's, in an editable install)."""
    here = (start or Path(__file__)).resolve()
    for cand in (here, *here.parents):
        if (cand / "pyproject.toml").is_file() and (cand / "src" / "hazmon").is_dir():
            return cand
    raise WheelhouseError(f"{here}: no hazmon checkout (pyproject.toml + src/hazmon) above it; pass --project")


def source_files(root: Path) -> list[Path]:
    """What the project's wheel is built from, relative to root, sorted."""
    files = [Path("pyproject.toml")]
    for dirpath, dirnames, filenames in os.walk(root / "src"):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in filenames:
            if not name.endswith((".pyc", ".pyo")):
                files.append((Path(dirpath) / name).relative_to(root))
    return sorted(files)


def tree_digest(root: Path, files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for rel in files:
        h.update(str(rel).encode() + b"\0")
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def installed_versions() -> dict[str, str]:
    """The control node's installed distributions (canonical name -> version), hazmon excepted."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) != "hazmon":
            out[canonicalize_name(name)] = dist.version
    return dict(sorted(out.items()))


def python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def cache_key(src_digest: str, constraints: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, python_tag(), sysconfig.get_platform(), src_digest, constraints]).encode())
    return h.hexdigest()[:24]


def pyproject(root: Path) -> dict:
    with open(root / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


# ---------------------------------------------------------------- what the collector needs


def _imports(node: ast.AST, lazy: bool = False) -> Iterator[tuple[str, bool]]:
    """(top-level module, imported inside a function) for every import under `node`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield alias.name.split(".")[0], lazy
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            yield child.module.split(".")[0], lazy
        yield from _imports(child, lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))


def static_imports(package_dir: Path, skip: frozenset[str] = CONTROL_ONLY) -> tuple[set[str], set[str]]:
    """Third-party top-level modules the package's own code imports (stdlib and hazmon left out):
    (imported at module level somewhere, imported only inside functions)."""
    eager: set[str] = set()
    lazy: set[str] = set()
    for file in sorted(package_dir.glob("*.py")):
        if file.stem in skip:
            continue
        for name, in_function in _imports(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if name in sys.stdlib_module_names or name in ("hazmon", "__future__"):
                continue
            (lazy if in_function else eager).add(name)
    return eager, lazy - eager


def runtime_imports(root: Path, extra: Iterable[str]) -> tuple[set[str], set[Path]]:
    """What importing the collector's entry points (and `extra`) loads, in a fresh interpreter: the
    top-level modules (this sees what dependencies import on their own: pymodbus -> serial), and the
    files of the project's own modules, relative to `root`."""
    mods = [*ENTRY_MODULES, *sorted(extra)]
    code = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "new = set(sys.modules) - before\n"
        "own = [getattr(sys.modules[n], '__file__', None) for n in new if n == 'hazmon' or n.startswith('hazmon.')]\n"
        "print(json.dumps({'top': sorted({n.split('.')[0] for n in new}), 'own': sorted(f for f in own if f)}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False,
                          cwd=root)
    if done.returncode != 0:
        raise WheelhouseError(f"importing the collector's modules failed:\n{done.stderr.strip()}")
    data = json.loads(done.stdout)
    src = (root / "src").resolve()
    own = {Path(f).resolve() for f in data["own"]}
    outside = sorted(str(f) for f in own if not f.is_relative_to(src))
    if outside:
        raise WheelhouseError(f"hazmon modules were imported from outside {src}: {outside[:3]}")
    return set(data["top"]), {f.relative_to(root.resolve()) for f in own}


@dataclass
class Analysis:
    """What the gateway needs of the checkout: third-party imports, and the project's own files."""

    eager: set[str]  # third-party modules the collector imports at module level
    lazy: set[str]  # ... only inside functions
    runtime: set[str]  # top-level modules loaded at run time, the dependencies' own imports included
    files: list[Path]  # pyproject.toml and the project's modules the gateway runs, relative to the root


def analyse(root: Path) -> Analysis:
    """The collector's part of the checkout: the modules its entry points load, and every module of
    the hazmon.collector package (some are imported lazily) but render.py (control node only)."""
    package = root / "src" / "hazmon" / "collector"
    eager, lazy = static_imports(package)
    runtime, own = runtime_imports(root, eager | lazy)
    own |= {p.relative_to(root) for p in package.glob("*.py") if p.stem not in CONTROL_ONLY}
    own -= {(package / f"{stem}.py").relative_to(root) for stem in CONTROL_ONLY}
    return Analysis(eager, lazy, runtime, [Path("pyproject.toml"), *sorted(own)])


def select_requirements(
    dependencies: list[str], static: set[str], runtime: set[str], dist_of: Mapping[str, list[str]]
) -> list[str]:
    """The pyproject.toml dependencies that provide a module the collector loads, in pyproject order.

    A module the collector's own code imports must come from a declared dependency (else the
    gateway would miss it); modules only dependencies import are covered when declared (pyserial)
    and otherwise left to pip's resolution (pydantic-core, typing-extensions...).
    """
    declared = {canonicalize_name(Requirement(d).name): d for d in dependencies}
    wanted: set[str] = set()
    for mod in sorted(static | runtime):
        dists = {canonicalize_name(d) for d in dist_of.get(mod, [])}
        hits = dists & declared.keys()
        if hits:
            wanted |= hits
        elif mod in static:
            raise WheelhouseError(
                f"hazmon.collector imports {mod!r}, which no dependency in pyproject.toml provides "
                f"(installed from: {', '.join(sorted(dists)) or 'nothing'}): declare it there")
    return [d for name, d in declared.items() if name in wanted]


# ---------------------------------------------------------------- building


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise WheelhouseError(f"{what} failed ({' '.join(argv)}):\n{(done.stderr or done.stdout).strip()}")


def stage_sources(root: Path, files: list[Path], dest: Path, local_version: str,
                  scripts: Iterable[str] = ("hazmon-collector",)) -> None:
    """Copy `files` of the project into `dest` (the checkout stays clean: setuptools writes build/
    and *.egg-info beside the sources), its version given a local label and only `scripts` of its
    console scripts kept (the others would import modules the gateway does not get)."""
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest / rel)
    text = (dest / "pyproject.toml").read_text(encoding="utf-8")
    new, n = re.subn(r'(?m)^version\s*=\s*"([^"+]+)"', lambda m: f'version = "{m[1]}+{local_version}"', text, count=1)
    if n != 1:
        raise WheelhouseError(f"{root}/pyproject.toml: no static [project] version to label")
    section = re.search(r"(?ms)^\[project\.scripts\]\n(.*?)(?=^\[|\Z)", new)
    if section:
        kept = [line for line in section[1].splitlines(keepends=True)
                if not re.match(r"\s*[\w.-]+\s*=", line) or line.split("=")[0].strip() in scripts]
        new = new[:section.start(1)] + "".join(kept) + new[section.end(1):]
    (dest / "pyproject.toml").write_text(new, encoding="utf-8")


def lock_lines(wheels: Iterable[Path]) -> list[str]:
    """`name==version --hash=sha256:...` per wheel, sorted: what pip --require-hashes installs."""
    lines = []
    for whl in wheels:
        name, version, _, _ = parse_wheel_filename(whl.name)
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    return sorted(lines)


def write_tar(lock: str, wheels: Iterable[Path], out: Path, tools: Iterable[Path] = ()) -> None:
    """requirements.txt + wheels/*.whl (+ tools/*) in a byte-reproducible tar (fixed order, owner and
    times), so that the role's copy is unchanged when the content is."""

    def _info(name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
            size, EPOCH, 0o644, 0, 0, "", "")
        return info

    data = lock.encode()
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info(LOCK_NAME, len(data)), io.BytesIO(data))
        members = [(f"wheels/{w.name}", w) for w in wheels] + [(f"tools/{t.name}", t) for t in tools]
        for arcname, path in sorted(members):
            with open(path, "rb") as fh:
                tar.addfile(_info(arcname, path.stat().st_size), fh)


def write_profile(entry: Path, name: str, wheels: list[Path], tools: list[Path]) -> Profile:
    lock = "\n".join(lock_lines(wheels)) + "\n"
    tar = f"wheelhouse-{name}.tar"
    write_tar(lock, wheels, entry / tar, tools)
    (entry / f"requirements-{name}.txt").write_text(lock, encoding="utf-8")
    return Profile(name=name, tar=tar, lock_sha256=hashlib.sha256(lock.encode()).hexdigest(),
                   wheels=sorted(w.name for w in wheels), bytes=(entry / tar).stat().st_size)


def lazy_requirements(reqs: list[str], lazy: set[str], dist_of: Mapping[str, list[str]]) -> tuple[list[str], list[str]]:
    """Split the runtime requirements: (needed by every gateway, needed only for LAZY_BY_PROTOCOL's protocols)."""
    optional_mods = {m for m in lazy if m in LAZY_BY_PROTOCOL}
    optional_dists = {canonicalize_name(d) for m in optional_mods for d in dist_of.get(m, [])}
    base = [r for r in reqs if canonicalize_name(Requirement(r).name) not in optional_dists]
    return base, [r for r in reqs if r not in base]


def _wheel_names(wheels: Path, reqs: list[str], env: dict[str, str], tmpdir: Path, what: str) -> set[str]:
    """The wheels of `wheels` that pip's resolution of `reqs` takes (offline, from that directory)."""
    out = tmpdir / f"resolve-{what}"
    (tmpdir / f"{what}.in").write_text("\n".join(reqs) + "\n", encoding="utf-8")
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-index", "--find-links", str(wheels),
          "--dest", str(out), "-r", str(tmpdir / f"{what}.in")], f"pip download ({what} profile)", env)
    return {p.name for p in out.glob("*.whl")}


def _build(root: Path, entry: Path, key: str, src_digest: str, constraints: dict[str, str],
           found: Analysis) -> Wheelhouse:
    meta = pyproject(root)["project"]
    eager, lazy, runtime = found.eager, found.lazy, found.runtime
    dist_of = importlib.metadata.packages_distributions()
    reqs = select_requirements(meta.get("dependencies", []), eager | lazy, runtime, dist_of)
    base_reqs, optional = lazy_requirements(reqs, lazy, dist_of)
    local = f"src.{src_digest[:12]}"
    wheels = entry / "wheels"
    wheels.mkdir(parents=True)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", SOURCE_DATE_EPOCH=str(EPOCH))
    with tempfile.TemporaryDirectory(prefix="hazmon-wheelhouse-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "requirements.in").write_text("\n".join(reqs) + "\n", encoding="utf-8")
        (tmpdir / "constraints.txt").write_text(
            "".join(f"{n}=={v}\n" for n, v in constraints.items()), encoding="utf-8")
        pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels)]
        _run([*pip, "-r", str(tmpdir / "requirements.in"), "-c", str(tmpdir / "constraints.txt")],
             "pip wheel (runtime dependencies)", env)
        minimal = _wheel_names(wheels, base_reqs, env, tmpdir, "minimal") if optional else None
        stage = tmpdir / "stage"
        stage_sources(root, found.files, stage, local)
        _run([*pip, "--no-deps", str(stage)], "pip wheel (hazmon)", env)
        # The installer: the gateway runs pip from its wheel (python pip.whl/pip install ...), so its
        # venv needs neither ensurepip (Debian's python3-venv) nor a pip of its own.
        tools = entry / "tools"
        pip_version = constraints.get("pip") or importlib.metadata.version("pip")
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
              "--dest", str(tools), f"pip=={pip_version}"], "pip download (the installer)", env)
    every = sorted(wheels.glob("*.whl"))
    own = [w for w in every if w.name.startswith("hazmon-")]
    installer = sorted(tools.glob("pip-*.whl"))
    profiles = {"full": write_profile(entry, "full", every, installer)}
    subset = every if minimal is None else [w for w in every if w.name in minimal] + own
    profiles["minimal"] = write_profile(entry, "minimal", subset, installer)
    wh = Wheelhouse(
        key=key, path=entry, hazmon_version=f"{meta['version']}+{local}", python=python_tag(),
        platform=sysconfig.get_platform(), requirements=reqs,
        lazy_protocols=sorted({LAZY_BY_PROTOCOL[m] for m in lazy if m in LAZY_BY_PROTOCOL}) if optional else [],
        profiles=profiles,
    )
    manifest = {k: v for k, v in asdict(wh).items() if k not in ("built", "seconds", "path")}
    (entry / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return wh


def _load(entry: Path) -> Wheelhouse:
    data = json.loads((entry / MANIFEST_NAME).read_text(encoding="utf-8"))
    profiles = {name: Profile(**p) for name, p in data.pop("profiles").items()}
    return Wheelhouse(path=entry, profiles=profiles, **data)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (two rollouts started together must not race)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def prune(cache: Path, keep_key: str, keep: int = KEEP) -> None:
    entries = [p for p in cache.iterdir() if p.is_dir() and (p / MANIFEST_NAME).exists() and p.name != keep_key]
    entries.sort(key=lambda p: (p / MANIFEST_NAME).stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    index = cache / TREE_INDEX
    if index.is_dir():  # tree keys pointing to a pruned wheelhouse
        for link in index.iterdir():
            if not (cache / link.read_text(encoding="utf-8").strip() / MANIFEST_NAME).exists():
                link.unlink(missing_ok=True)


def ensure(root: Path, cache: Path = DEFAULT_CACHE, rebuild: bool = False) -> Wheelhouse:
    """The wheelhouse of the checkout at `root`: from the cache, or built into it.

    Two keys: the whole tree's (a hash of every source file: the fast path when nothing changed)
    points to the wheelhouse's own, a hash of only the files the gateway gets. An edit elsewhere
    (the lab, the survey tables) costs one analysis (~1 s) and finds the same wheelhouse: the
    gateways' lock is unchanged, nothing is reinstalled or restarted.
    """
    started = time.monotonic()
    constraints = installed_versions()
    tree_key = cache_key(tree_digest(root, source_files(root)), constraints)
    index = cache / TREE_INDEX / tree_key
    with _locked(cache):
        key = index.read_text(encoding="utf-8").strip() if index.exists() and not rebuild else None
        if key is None or not (cache / key / MANIFEST_NAME).exists():
            found = analyse(root)
            src_digest = tree_digest(root, found.files)
            key = cache_key(src_digest, constraints)
        entry = cache / key
        if rebuild and entry.exists():
            shutil.rmtree(entry)
        if (entry / MANIFEST_NAME).exists():
            wh = _load(entry)
            os.utime(entry / MANIFEST_NAME)  # most recently used: kept by prune
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
            tmp.chmod(0o755)  # wheels hold no secret; an unprivileged ansible user may read them
            try:
                wh = _build(root, tmp, key, src_digest, constraints, found)
                os.rename(tmp, entry)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            wh.path, wh.built = entry, True
            prune(cache, key)
        index.parent.mkdir(exist_ok=True)
        index.write_text(key + "\n", encoding="utf-8")
    wh.seconds = round(time.monotonic() - started, 3)
    return wh


def copy_out(wh: Wheelhouse, out: Path) -> None:
    """Put a copy of the wheelhouse in `out` (its previous wheels are replaced)."""
    if out.resolve() == wh.path.resolve():
        return
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "wheels", ignore_errors=True)
    shutil.copytree(wh.path / "wheels", out / "wheels")
    for prof in wh.profiles.values():
        shutil.copy2(wh.path / prof.tar, out / prof.tar)
        shutil.copy2(wh.path / f"requirements-{prof.name}.txt", out / f"requirements-{prof.name}.txt")
    shutil.copy2(wh.path / MANIFEST_NAME, out / MANIFEST_NAME)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hazmon.rollout.wheelhouse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="also copy the wheelhouse into this directory")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"cache directory (default {DEFAULT_CACHE})")
    p.add_argument("--project", type=Path, help="the hazmon checkout (default: the one this module runs from)")
    p.add_argument("--rebuild", action="store_true", help="build even if the cache has this key")
    args = p.parse_args(argv)
    try:
        root = project_root(args.project)
        wh = ensure(root, args.cache, args.rebuild)
        if args.out is not None:
            copy_out(wh, args.out)
    except (WheelhouseError, OSError) as exc:
        print(f"wheelhouse: {exc}", file=sys.stderr)
        return 1
    result = wh.as_json()
    if args.out is not None:
        result["out"] = str(args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
