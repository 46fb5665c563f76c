"""The province's package mirror in the lab: a real, signed, partial Debian bookworm mirror.

Lab hosts have no Internet, yet the rollout installs Debian packages on them, as it would at a
site that only reaches the province over the e-government extranet. So the lab carries what
the rollout needs: Debian's own `InRelease` (signed by Debian, checked by the hosts against the
debian-archive-keyring already in their base, no `trusted=yes`), the suite's own
`Packages.xz` (also at its by-hash path, since the InRelease says `Acquire-By-Hash: yes`), and
the .debs that PACKAGES and their dependencies missing from the lab base image need, at their
`Filename:` paths. Only what the base lacks is fetched (about 12 MB).

The dependency set is apt's own answer: apt runs on this machine against the tree being built
(a file: source, checked with the same keyring the hosts use) and with the base image's dpkg
status as its installed set, `--print-uris` then names each .deb. Nothing runs inside the base.

Built once and cached like the base image (hazmon.lab.image): a marker records the package
list, the suite and the base it was resolved against, so a changed list or a rebuilt base
rebuilds the mirror. `serve` is the small HTTP server the lab runs as `svc:mirror`; it also
hands out incompressible probe blobs for link-capacity checks (GET /probe/8MiB).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hazmon.lab import image

DEFAULT_CACHE = Path(os.environ.get("HAZMON_LAB_MIRROR", "/var/cache/hazmon/lab-mirror"))
SUITE = image.SUITE  # the suite the base came from: hosts must not mix suites
COMPONENT = "main"
ARCH = "amd64"
# The one list of what the rollout installs on lab hosts (their dependencies come along).
# python3-apt is not installed by any role by name, but Ansible's apt module installs it first
# when it is missing, so without it the first `ansible.builtin.apt` task on a bare host fails.
PACKAGES = (
    "chrony",
    "nftables",
    "prometheus-node-exporter",
    "python3-venv",
    "python3-pip",
    "mosquitto",
    "python3-apt",
)
MARKER = ".hazmon-lab-mirror"
TREE = "debian"  # the tree lives under <cache>/debian: served as http://ADDR/debian
KEYRING = "usr/share/keyrings/debian-archive-keyring.gpg"  # relative to the base rootfs
INDEX = f"{COMPONENT}/binary-{ARCH}/Packages.xz"
# apt on a host also fetches the English descriptions (its default Acquire::Languages) and fails
# `apt-get update` on a 404, so the mirror carries them too (6 MB), unchanged.
INDEXES = (INDEX, f"{COMPONENT}/i18n/Translation-en.xz")
PROBE_MAX = 256 * 2**20  # a probe larger than this is a mistake, not a measurement
FETCH_TIMEOUT = 60.0


class MirrorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Mirror:
    root: Path  # what `serve --root` serves: <root>/debian/dists/...
    built_seconds: float | None  # None when the cache was used

    @property
    def tree(self) -> Path:
        return self.root / TREE

    def manifest(self) -> list[str]:
        """`package version filename` of every .deb the mirror holds."""
        path = self.root / "packages.txt"
        return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []

    def size_bytes(self) -> int:
        # by-hash names are hard links: count each file once.
        files = {(st.st_dev, st.st_ino): st.st_size for st in (p.stat() for p in self.tree.rglob("*") if p.is_file())}
        return sum(files.values())


# ---------------------------------------------------------------- building


def _marker_text(base_rootfs: Path) -> str:
    # The base's dpkg status is what the dependencies were resolved against: a rebuilt base
    # (say, from a newer point release) must get a mirror resolved against it.
    status = base_rootfs / "var/lib/dpkg/status"
    digest = hashlib.sha256(status.read_bytes()).hexdigest() if status.is_file() else "none"
    return (
        f"suite={SUITE}\ncomponent={COMPONENT}\narch={ARCH}\npackages={','.join(PACKAGES)}\n"
        f"base_status_sha256={digest}\nversion=2\n"
    )


def is_cached(cache: Path = DEFAULT_CACHE, base_rootfs: Path | None = None) -> bool:
    base_rootfs = base_rootfs or image.DEFAULT_CACHE / "rootfs"
    marker = cache / MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8") == _marker_text(base_rootfs)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as resp:
        return resp.read()


def verified_release(inrelease: bytes, keyring: Path) -> str:
    """The signed text of an InRelease, only if Debian's key signed it (gpgv, as apt does)."""
    with tempfile.TemporaryDirectory() as tmp:
        signed = Path(tmp) / "InRelease"
        signed.write_bytes(inrelease)
        out = Path(tmp) / "Release"
        res = subprocess.run(
            ["gpgv", "--keyring", str(keyring), "--output", str(out), str(signed)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise MirrorError(f"InRelease signature not valid for {keyring}: {res.stderr.strip()}")
        return out.read_text(encoding="utf-8")


def release_sha256(release: str) -> dict[str, tuple[str, int]]:
    """The SHA256 section of a Release file: {path: (sha256, size)}."""
    out: dict[str, tuple[str, int]] = {}
    in_section = False
    for line in release.splitlines():
        if not line.startswith(" "):
            in_section = line.rstrip() == "SHA256:"
            continue
        if in_section:
            digest, size, path = line.split()
            out[path] = (digest, int(size))
    return out


def release_field(release: str, name: str) -> str | None:
    m = re.search(rf"^{re.escape(name)}:\s*(.*)$", release, re.M)
    return m.group(1).strip() if m else None


def packages_index(packages_xz: bytes, wanted: set[str]) -> dict[str, dict[str, str]]:
    """Stanzas of a Packages.xz whose Filename is in `wanted`, by Filename."""
    found: dict[str, dict[str, str]] = {}
    for stanza in lzma.decompress(packages_xz).decode("utf-8").split("\n\n"):
        m = re.search(r"^Filename: (\S+)$", stanza, re.M)
        if m is None or m.group(1) not in wanted:
            continue
        fields = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        found[m.group(1)] = fields
    return found


def _apt_config(work: Path, tree: Path, base_rootfs: Path) -> Path:
    """An apt configuration that reads nothing of this machine's apt: only the tree being built,
    the base image's installed set, and the base's Debian keyring."""
    apt = work / "apt"
    for d in ("etc", "lists/partial", "cache/archives/partial", "state", "log"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(
        f"deb [signed-by={base_rootfs / KEYRING}] file:{tree} {SUITE} {COMPONENT}\n", encoding="utf-8"
    )
    conf = apt / "apt.conf"
    conf.write_text(
        "\n".join(
            [
                'Dir "/";',
                'Dir::Etc::main "/dev/null";',
                f'Dir::Etc::parts "{apt / "etc"}";',
                f'Dir::Etc::sourcelist "{apt / "sources.list"}";',
                f'Dir::Etc::sourceparts "{apt / "etc"}";',
                'Dir::Etc::preferences "/dev/null";',
                f'Dir::Etc::preferencesparts "{apt / "etc"}";',
                'Dir::Etc::trusted "/dev/null";',
                f'Dir::Etc::trustedparts "{apt / "etc"}";',
                f'Dir::State "{apt / "state"}";',
                f'Dir::State::lists "{apt / "lists"}";',
                f'Dir::State::status "{base_rootfs / "var/lib/dpkg/status"}";',
                f'Dir::Cache "{apt / "cache"}";',
                f'Dir::Log "{apt / "log"}";',
                f'APT::Architecture "{ARCH}";',
                f'APT::Architectures {{ "{ARCH}"; }};',
                'Acquire::Languages "none";',
                # The work dir is root's: apt's _apt sandbox user could not read it.
                'APT::Sandbox::User "root";',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return conf


def resolve(work: Path, tree: Path, base_rootfs: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Pool paths (Filename:) of every .deb apt would fetch to install `packages` on the base."""
    env = {**os.environ, "APT_CONFIG": str(_apt_config(work, tree, base_rootfs)), "LC_ALL": "C"}
    upd = subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
    # apt-get update exits 0 on some fetch errors: its W:/E: lines are the verdict.
    if upd.returncode != 0 or re.search(r"^(E|W):", upd.stdout + upd.stderr, re.M):
        raise MirrorError(f"apt-get update against the new tree failed:\n{upd.stdout}{upd.stderr}")
    res = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--print-uris", "--no-install-recommends", *packages],
        env=env,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise MirrorError(f"apt cannot resolve {' '.join(packages)} against the base:\n{res.stderr}")
    prefix = f"file:{tree}/"
    paths = []
    for line in res.stdout.splitlines():
        if not line.startswith("'"):
            continue
        uri = line.split("'")[1]
        if not uri.startswith(prefix):
            raise MirrorError(f"apt wants {uri}, not from the tree")
        paths.append(urllib.parse.unquote(uri[len(prefix) :]))
    return paths


def _download(upstream: str, filename: str, fields: dict[str, str], tree: Path) -> int:
    data = fetch(f"{upstream}/{filename}")
    if len(data) != int(fields["Size"]) or hashlib.sha256(data).hexdigest() != fields["SHA256"]:
        raise MirrorError(f"{upstream}/{filename}: size or SHA256 differs from the suite's Packages")
    dest = tree / filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return len(data)


def build(
    cache: Path = DEFAULT_CACHE,
    base_rootfs: Path | None = None,
    upstream: str | None = None,
    log=print,
) -> Mirror:
    """Build the mirror into `cache` (replacing what is there)."""
    base_rootfs = base_rootfs or image.DEFAULT_CACHE / "rootfs"
    keyring = base_rootfs / KEYRING
    if not keyring.is_file():
        raise MirrorError(f"{keyring}: no Debian keyring in the base image; build the base first")
    started = time.monotonic()
    upstream = (upstream or image.debian_mirror()).rstrip("/")
    log(f"building the lab package mirror from {upstream} (once; cached in {cache})")
    work = cache.parent / (cache.name + ".building")
    if work.exists():
        shutil.rmtree(work)
    tree = work / TREE
    dists = tree / "dists" / SUITE
    dists.mkdir(parents=True)

    inrelease = fetch(f"{upstream}/dists/{SUITE}/InRelease")
    release = verified_release(inrelease, keyring)
    if release_field(release, "Codename") != SUITE:
        raise MirrorError(f"{upstream}: InRelease of {SUITE} names codename {release_field(release, 'Codename')}")
    (dists / "InRelease").write_bytes(inrelease)
    sums = release_sha256(release)
    by_hash = release_field(release, "Acquire-By-Hash") == "yes"
    for name in INDEXES:
        digest, size = sums[name]
        data = fetch(f"{upstream}/dists/{SUITE}/{name}")
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise MirrorError(f"{upstream}: {name} does not match its InRelease (mirror mid-update? retry)")
        index = dists / name
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_bytes(data)
        if by_hash:
            # apt then asks for the index by its hash, never by name.
            hashed = index.parent / "by-hash" / "SHA256" / digest
            hashed.parent.mkdir(parents=True, exist_ok=True)
            os.link(index, hashed)
        if name == INDEX:
            packages_xz = data

    filenames = resolve(work, tree, base_rootfs)
    stanzas = packages_index(packages_xz, set(filenames))
    missing = set(filenames) - set(stanzas)
    if missing:
        raise MirrorError(f"not in {SUITE}'s Packages: {', '.join(sorted(missing))}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda f: _download(upstream, f, stanzas[f], tree), filenames))
    manifest = sorted(f"{s['Package']} {s['Version']} {f}" for f, s in stanzas.items())
    (work / "packages.txt").write_text("\n".join(manifest) + "\n", encoding="utf-8")
    shutil.rmtree(work / "apt")
    (work / MARKER).write_text(_marker_text(base_rootfs), encoding="utf-8")
    if cache.exists():
        shutil.rmtree(cache)
    work.rename(cache)
    return Mirror(cache, time.monotonic() - started)


def ensure_mirror(cache: Path = DEFAULT_CACHE, base_rootfs: Path | None = None, log=print) -> Mirror:
    """The cached mirror, built first if absent or stale (a few seconds, about 12 MB)."""
    if is_cached(cache, base_rootfs):
        return Mirror(cache, None)
    return build(cache, base_rootfs, log=log)


# ---------------------------------------------------------------- serving


def probe_size(name: str) -> int | None:
    """Bytes asked for by a probe path's last part: "8MiB", "512KiB", "1000000"; None if not one."""
    m = re.fullmatch(r"(\d+)(KiB|MiB)?", name)
    if m is None:
        return None
    n = int(m.group(1)) * {None: 1, "KiB": 2**10, "MiB": 2**20}[m.group(2)]
    return n if 0 < n <= PROBE_MAX else None


class MirrorHandler(SimpleHTTPRequestHandler):
    """Static files under the root (no listings), and /probe/<size> blobs made on request."""

    server_version = "hazmon-mirror/1"
    protocol_version = "HTTP/1.1"  # keep-alive: apt fetches many files over one connection
    CHUNK = 64 * 2**10

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/probe/"):
            self._probe(path.removeprefix("/probe/"), body=True)
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/probe/"):
            self._probe(path.removeprefix("/probe/"), body=False)
        else:
            super().do_HEAD()

    def _probe(self, name: str, body: bool) -> None:
        size = probe_size(name)
        if size is None:
            self.send_error(HTTPStatus.NOT_FOUND, f"probe size: 1..{PROBE_MAX} bytes, as N, NKiB or NMiB")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-store")  # a cached probe measures the cache
        self.end_headers()
        if not body:
            return
        # Random bytes: no compressing link or proxy can make the line look faster than it is.
        left = size
        while left > 0:
            n = min(left, self.CHUNK)
            self.wfile.write(os.urandom(n))
            left -= n

    def list_directory(self, path):  # a mirror, not a file browser
        self.send_error(HTTPStatus.NOT_FOUND, "no listings")
        return None


def make_server(root: Path, bind: str, port: int) -> ThreadingHTTPServer:
    handler = partial(MirrorHandler, directory=str(root))
    server = ThreadingHTTPServer((bind, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hazmon.lab.mirror", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the cached mirror and print what it holds")
    b.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    b.add_argument("--force", action="store_true", help="rebuild even when the cache is current")
    s = sub.add_parser("serve", help="serve a mirror root and /probe/<size> over HTTP")
    s.add_argument("--root", type=Path, default=DEFAULT_CACHE)
    s.add_argument("--bind", default="127.0.0.1")
    s.add_argument("--port", type=int, default=80)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        image.ensure_base()
        mirror = build(args.cache) if args.force else ensure_mirror(args.cache)
        took = "cached" if mirror.built_seconds is None else f"built in {mirror.built_seconds:.1f} s"
        pkgs = mirror.manifest()
        print(f"{mirror.tree}: {len(pkgs)} packages, {mirror.size_bytes() / 1e6:.1f} MB ({took})")
        return 0
    if not (args.root / TREE / "dists" / SUITE / "InRelease").is_file():
        print(f"{args.root}: no mirror tree here (run `python -m hazmon.lab.mirror build`)", file=sys.stderr)
        return 2
    server = make_server(args.root, args.bind, args.port)
    print(f"serving {args.root} on http://{args.bind}:{args.port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
