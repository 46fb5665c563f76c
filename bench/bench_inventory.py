"""Inventory at national scale: validation, and ansible-inventory through the hazmon plugin.

    .venv/bin/python bench/bench_inventory.py [--enterprises 7000] [--baseline 700] [--quick]

Generates the synthetic inventory into .cache/synth-<N> when absent (hazmon inventory synth), then
prints, each measured in its own child process (wall time, CPU time, peak RSS from
getrusage(RUSAGE_CHILDREN)):
  - validation (load + every rule + readiness) of the N-enterprise inventory, cold (empty parse
    cache: every YAML and CSV file parsed) and warm (parse cache filled, files unchanged);
  - `ansible-inventory --list` through the plugin, cold (empty cache) and warm (cache filled),
    plus `--list --export` (what AWX imports) and `--graph` (inventory load without the dump);
  - the same hosts, groups and variables as one static YAML inventory through ansible-inventory,
    measured on a fraction (--baseline enterprises) and scaled linearly to N: the full static
    baseline takes many minutes.
Targets: validate <= 5 s and <= 1.5 GB; plugin --list <= 20 s and >= 10x the static one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"
BIN = Path(sys.executable).parent
VALIDATE_TARGET_S = 5.0
VALIDATE_TARGET_RSS = 1.5 * 1024**3
LIST_TARGET_S = 20.0
SPEEDUP_TARGET = 10.0

_VALIDATE = """
import os, sys, time
from hazmon.inventory.validate import validate
inv, readiness = validate(sys.argv[1])
errors = len(inv.report.errors)
cache = inv.parse_cache
print(f"{len(inv.enterprises)} enterprises, {errors} errors, parse cache {cache.hits} hits "
      f"{cache.misses} misses", file=sys.stderr)
sys.stderr.flush()
# Leave without freeing the model object by object (about 2 s for 10 million objects), as mypy
# does: the operating system takes the memory back at once.
os._exit(1 if errors else 0)
"""


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `cmd` in a child of a fresh child, so that RUSAGE_CHILDREN belongs to `cmd` alone."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cmd)],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False, cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(cmd_json: str) -> int:
    cmd = json.loads(cmd_json)
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - started
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    print(json.dumps({"wall": wall, "cpu": use.ru_utime + use.ru_stime, "rss": use.ru_maxrss * 1024}))
    return 0


def _generator_stamp(n: int) -> str:
    """What the synthetic inventory was made from: the generator, the model and the rules it is
    valid against (a rule tightened since makes an old one invalid), and the size."""
    from hazmon.inventory import synth

    digest = hashlib.sha256(f"{n}\0seed 1".encode())
    for path in sorted(Path(synth.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_synth(n: int) -> Path:
    """The synthetic inventory of n enterprises, generated again when the code that makes and checks
    it has changed since (a stale one measured errors, not validation)."""
    out = CACHE / f"synth-{n}"
    stamp_file = out / ".generator-stamp"  # dot file: neither the loader nor the plugin reads it
    stamp = _generator_stamp(n)
    current = stamp_file.read_text() if stamp_file.exists() else ""
    if current != stamp or not (out / "province.yml").exists() or not (out / "hazmon.yml").exists():
        print(f"generating {out} ...", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hazmon.cli.synth", "synth", "--enterprises", str(n),
                        "--out", str(out), "--force"], check=True, cwd=REPO)
        stamp_file.write_text(stamp)
        shutil.rmtree(CACHE / f"static-{n}", ignore_errors=True)  # made from the old one
        print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)
    return out


def ensure_static(n: int) -> Path:
    """The plugin's hosts/groups/vars of synth-<n> written as one static YAML inventory."""
    synth = ensure_synth(n)  # first: regenerating it drops a stale static copy
    out = CACHE / f"static-{n}" / "hosts.yml"
    if out.exists():
        return out
    import yaml

    from hazmon.inventory.ansible import build, to_static_inventory
    from hazmon.inventory.validate import load_valid

    inv, readiness = load_valid(synth)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        yaml.dump(to_static_inventory(build(inv, readiness)), fh, Dumper=yaml.CSafeDumper, allow_unicode=True,
                  sort_keys=False)
    return out


def inventory_cmd(source: Path, *args: str) -> list[str]:
    return [str(BIN / "ansible-inventory"), "-i", str(source), *args, "--output", os.devnull]


def line(what: str, m: dict[str, float], target: str = "") -> None:
    print(f"  {what:<44} {m['wall']:7.1f} s wall {m['cpu']:7.1f} s CPU {m['rss'] / 1024**2:7.0f} MB peak"
          f"{'   ' + target if target else ''}", flush=True)


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enterprises", type=int, default=7000)
    parser.add_argument("--baseline", type=int, default=700, help="enterprises of the static baseline")
    parser.add_argument("--quick", action="store_true", help="skip --export/--graph and the baseline's extras")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)

    n, base = args.enterprises, args.baseline
    synth = ensure_synth(n)
    env_base = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    print(f"hazmon inventory bench: {n} enterprises ({synth}); machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    print("validation (load + rules + readiness), in a child process:")
    parse_cache = Path(tempfile.mkdtemp(prefix="hazmon-bench-parse-"))
    try:
        for label in ("cold parse cache (every file parsed)", "warm parse cache (files unchanged)"):
            v = measure([sys.executable, "-c", _VALIDATE, str(synth)], {"HAZMON_CACHE_DIR": str(parse_cache)})
            line(f"validate, {label}", v, f"target <= {VALIDATE_TARGET_S:g} s, <= 1.5 GB: "
                 f"{verdict(v['wall'] <= VALIDATE_TARGET_S and v['rss'] <= VALIDATE_TARGET_RSS)}")
        cache_mb = sum(f.stat().st_size for f in parse_cache.rglob("*.marshal")) / 1024**2
        print(f"  parse cache: {cache_mb:.0f} MB")
    finally:
        shutil.rmtree(parse_cache, ignore_errors=True)

    print("ansible-inventory through the hazmon plugin (cache: jsonfile, fingerprinted):")
    cache_dir = Path(tempfile.mkdtemp(prefix="hazmon-bench-cache-"))
    try:
        # Cold: both the plugin's cache and the parse cache start empty.
        env = {**env_base, "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(cache_dir),
               "HAZMON_CACHE_DIR": str(cache_dir / "hazmon")}
        cold = measure(inventory_cmd(synth / "hazmon.yml", "--list"), env)
        line("--list, cold cache", cold)
        warm = measure(inventory_cmd(synth / "hazmon.yml", "--list"), env)
        line("--list, warm cache", warm, f"target <= {LIST_TARGET_S:g} s: {verdict(warm['wall'] <= LIST_TARGET_S)}")
        extra = {}
        if not args.quick:
            extra["--list --export"] = measure(inventory_cmd(synth / "hazmon.yml", "--list", "--export"), env)
            line("--list --export, warm cache (AWX import)", extra["--list --export"])
            extra["--graph"] = measure(inventory_cmd(synth / "hazmon.yml", "--graph"), env)
            line("--graph, warm cache (load, no var dump)", extra["--graph"])
        cache_mb = sum(f.stat().st_size for f in cache_dir.iterdir() if f.is_file()) / 1024**2
        print(f"  cache entry: {cache_mb:.1f} MB")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    scale = n / base
    static = ensure_static(base)
    print(f"static YAML inventory baseline: {base} enterprises measured, scaled linearly x{scale:g} to {n}:")
    s_list = measure(inventory_cmd(static, "--list"), env_base)
    line(f"static --list ({base}, measured)", s_list)
    print(f"  static --list, scaled to {n}: {s_list['wall'] * scale:.0f} s wall (estimate)")
    ratio = s_list["wall"] * scale / warm["wall"]
    print(f"  plugin --list (warm) is {ratio:.1f}x faster than the static one: "
          f"target >= {SPEEDUP_TARGET:g}x: {verdict(ratio >= SPEEDUP_TARGET)}")
    if not args.quick:
        for mode, flags in (("--list --export", ("--list", "--export")), ("--graph", ("--graph",))):
            s = measure(inventory_cmd(static, *flags), env_base)
            line(f"static {mode} ({base}, measured)", s)
            print(f"  {mode}: static scaled {s['wall'] * scale:.0f} s vs plugin {extra[mode]['wall']:.1f} s: "
                  f"{s['wall'] * scale / extra[mode]['wall']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
