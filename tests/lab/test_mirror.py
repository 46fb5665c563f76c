"""The province's package mirror (hazmon.lab.mirror): Debian's own signed indexes, the .debs the rollout
needs, and an apt that installs them with signature checking on.

The apt tests run apt-get inside a throwaway overlay of the lab base image (a chroot in private mount
and network namespaces, so neither the base nor this machine's network is touched), against the
mirror server on that namespace's loopback: the same apt, keyring and package set as a lab host.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from hazmon.inventory.model import MirrorEndpoint
from hazmon.inventory.validate import load_valid
from hazmon.lab import image, mirror
from hazmon.lab.plan import PlanError, build_plan
from hazmon.lab.services import mirror_service
from hazmon.testing.procs import free_port, stop, wait_port

RELEASE = textwrap.dedent("""\
    Origin: Debian
    Codename: bookworm
    Acquire-By-Hash: yes
    MD5Sum:
     0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
    SHA256:
     9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5  8790396 main/binary-amd64/Packages.xz
     a3d4a0bfd8e9242810b0885eda7c1a6e05dac15b333ddbaab03ba56f2dfa4bf0  6107304 main/i18n/Translation-en.xz
    """)


# ---------------------------------------------------------------- unit


def test_release_sha256_reads_only_the_sha256_section() -> None:
    sums = mirror.release_sha256(RELEASE)
    assert sums == {
        "main/binary-amd64/Packages.xz": ("9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5", 8790396),
        "main/i18n/Translation-en.xz": ("a3d4a0bfd8e9242810b0885eda7c1a6e05dac15b333ddbaab03ba56f2dfa4bf0", 6107304),
    }
    assert mirror.release_field(RELEASE, "Acquire-By-Hash") == "yes"
    assert mirror.release_field(RELEASE, "Valid-Until") is None


def test_packages_index_keeps_the_wanted_stanzas() -> None:
    text = (
        "Package: a\nVersion: 1\nFilename: pool/main/a/a_1_amd64.deb\nSize: 3\nSHA256: aa\nDescription: x\n y\n\n"
        "Package: b\nVersion: 2\nFilename: pool/main/b/b_2_all.deb\nSize: 4\nSHA256: bb\n"
    )
    found = mirror.packages_index(lzma.compress(text.encode()), {"pool/main/b/b_2_all.deb"})
    assert list(found) == ["pool/main/b/b_2_all.deb"]
    assert found["pool/main/b/b_2_all.deb"]["Version"] == "2"


@pytest.mark.parametrize(
    ("name", "size"),
    [("8MiB", 8 * 2**20), ("512KiB", 512 * 2**10), ("1000", 1000), ("0", None), ("1GiB", None), ("x", None),
     ("1000MiB", None)],
)
def test_probe_size(name: str, size: int | None) -> None:
    assert mirror.probe_size(name) == size


def test_a_changed_package_list_or_base_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "rootfs"
    (base / "var/lib/dpkg").mkdir(parents=True)
    (base / "var/lib/dpkg/status").write_text("Package: a\n")
    cache = tmp_path / "mirror"
    cache.mkdir()
    (cache / mirror.MARKER).write_text(mirror._marker_text(base))
    assert mirror.is_cached(cache, base)
    monkeypatch.setattr(mirror, "PACKAGES", (*mirror.PACKAGES, "jq"))
    assert not mirror.is_cached(cache, base)
    monkeypatch.undo()
    (base / "var/lib/dpkg/status").write_text("Package: a\nPackage: b\n")
    assert not mirror.is_cached(cache, base)


def test_the_lab_serves_the_mirror_only_where_the_inventory_says() -> None:
    spec = mirror_service("hzl-prov", MirrorEndpoint(url="http://198.18.0.15/debian"), Path("/m"))
    assert spec.name == "svc:mirror" and spec.ns == "hzl-prov"
    assert spec.listen == ("198.18.0.15", 80, "tcp")
    assert spec.argv[-6:] == ["--root", "/m", "--bind", "198.18.0.15", "--port", "80"]
    assert mirror_service("n", MirrorEndpoint(url="http://198.18.0.15:8080/debian/"), Path("/m")).listen[1] == 8080
    with pytest.raises(PlanError, match=r"platform\.mirror\.url"):
        mirror_service("n", MirrorEndpoint(url="http://198.18.0.15/ubuntu"), Path("/m"))


# ---------------------------------------------------------------- the real mirror


def _root() -> None:
    assert os.geteuid() == 0, "run the tests as root (README): the mirror test uses namespaces and a chroot"


@pytest.fixture(scope="module")
def built() -> mirror.Mirror:
    _root()
    base = image.ensure_base(log=lambda m: None)
    return mirror.ensure_mirror(mirror.DEFAULT_CACHE, base.rootfs, log=lambda m: None)


def suite_packages(m: mirror.Mirror) -> dict[str, dict[str, str]]:
    xz = (m.tree / "dists" / mirror.SUITE / mirror.INDEX).read_bytes()
    wanted = {line.split()[2] for line in m.manifest()}
    return mirror.packages_index(xz, wanted)


@pytest.mark.integration
def test_the_tree_is_debians_own_signed_suite(built: mirror.Mirror) -> None:
    base = image.DEFAULT_CACHE / "rootfs"
    dists = built.tree / "dists" / mirror.SUITE
    release = mirror.verified_release((dists / "InRelease").read_bytes(), base / mirror.KEYRING)
    assert mirror.release_field(release, "Codename") == "bookworm"
    sums = mirror.release_sha256(release)
    for name in mirror.INDEXES:
        digest, size = sums[name]
        data = (dists / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest), name
        assert (dists / name).parent.joinpath("by-hash", "SHA256", digest).read_bytes() == data
    stanzas = suite_packages(built)
    assert len(stanzas) == len(built.manifest()) >= len(mirror.PACKAGES)
    for filename, st in stanzas.items():
        deb = (built.tree / filename).read_bytes()
        assert hashlib.sha256(deb).hexdigest() == st["SHA256"], filename
    names = {line.split()[0] for line in built.manifest()}
    assert set(mirror.PACKAGES) <= names
    assert "systemd" not in names, "what the base already has must not be carried"


def _apt_script(port: int, packages: tuple[str, ...], inrelease_override: Path | None = None) -> str:
    """Shell run as root in new mount+network namespaces: serve the mirror, chroot into an overlay
    of the base, point apt at the mirror only, update and install."""
    serve_root = mirror.DEFAULT_CACHE if inrelease_override is None else inrelease_override
    return textwrap.dedent(f"""\
        set -eu
        W=$(mktemp -d)
        trap 'kill $SRV 2>/dev/null; umount -R $W/root 2>/dev/null; rm -rf $W' EXIT
        ip link set lo up
        {sys.executable} -m hazmon.lab.mirror serve --root {serve_root} --bind 127.0.0.1 --port {port} \\
            >$W/server.log 2>&1 &
        SRV=$!
        mkdir -p $W/upper $W/work $W/root
        mount -t overlay overlay -o lowerdir={image.DEFAULT_CACHE / "rootfs"},upperdir=$W/upper,workdir=$W/work $W/root
        mount -t proc proc $W/root/proc
        mount --rbind /dev $W/root/dev
        mount -t tmpfs tmpfs $W/root/run
        mount -t tmpfs tmpfs $W/root/tmp
        # No daemon starts in a chroot: it would run in this machine's (private) network namespace.
        printf '#!/bin/sh\\nexit 101\\n' >$W/root/usr/sbin/policy-rc.d
        chmod 755 $W/root/usr/sbin/policy-rc.d
        echo "deb http://127.0.0.1:{port}/debian bookworm main" >$W/root/etc/apt/sources.list
        for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done
        export DEBIAN_FRONTEND=noninteractive LC_ALL=C
        chroot $W/root apt-get update
        chroot $W/root apt-get install -y --no-install-recommends {" ".join(packages)}
        chroot $W/root dpkg-query -W -f='INSTALLED ${{Package}} ${{Version}}\\n' {" ".join(packages)}
        echo SERVED $(grep -c '" 200 ' $W/server.log)
        """)


def run_in_namespaces(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "--mount", "--net", "--fork", "bash", "-c", script], capture_output=True, text=True, timeout=300
    )


@pytest.mark.integration
def test_apt_installs_every_package_from_the_mirror_with_signatures_checked(built: mirror.Mirror) -> None:
    started = time.monotonic()
    res = run_in_namespaces(_apt_script(8080, mirror.PACKAGES))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "Get:1 http://127.0.0.1:8080/debian bookworm InRelease" in out
    # Signed-by the base's keyring and nothing weakened: no warning, no "unauthenticated".
    assert not [ln for ln in out.splitlines() if ln.startswith(("W:", "E:"))], out[-3000:]
    assert "WARNING: The following packages cannot be authenticated" not in out
    installed = dict(ln.split()[1:3] for ln in out.splitlines() if ln.startswith("INSTALLED "))
    versions = {ln.split()[0]: ln.split()[1] for ln in built.manifest()}
    assert set(installed) == set(mirror.PACKAGES)
    for name, version in installed.items():
        assert version == versions[name], f"{name}: installed {version}, the suite has {versions[name]}"
    print(f"apt update + install of {len(mirror.PACKAGES)} packages in a base chroot: "
          f"{time.monotonic() - started:.1f} s")


@pytest.mark.integration
def test_a_tampered_inrelease_is_refused(built: mirror.Mirror, tmp_path: Path) -> None:
    # A copy of the mirror whose InRelease says something Debian did not sign.
    fake = tmp_path / "fake"
    shutil.copytree(built.root, fake, copy_function=os.link)
    inrelease = fake / mirror.TREE / "dists" / mirror.SUITE / "InRelease"
    text = inrelease.read_text()
    assert "Description: Debian 12" in text
    inrelease.unlink()  # a hard link: never write through it into the cache
    inrelease.write_text(text.replace("Description: Debian 12", "Description: Debian 13"))
    res = run_in_namespaces(_apt_script(8081, ("chrony",), inrelease_override=fake))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "BADSIG" in out, out[-3000:]
    assert "INSTALLED chrony" not in out


# ---------------------------------------------------------------- the server


@pytest.fixture
def server(built: mirror.Mirror) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazmon.lab.mirror", "serve", "--root", str(built.root), "--bind", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port("127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.mark.integration
def test_the_server_hands_out_files_and_incompressible_probes(built: mirror.Mirror, server: str) -> None:
    status, body = get(f"{server}/debian/dists/bookworm/InRelease")
    assert status == 200 and body == (built.tree / "dists/bookworm/InRelease").read_bytes()
    status, blob = get(f"{server}/probe/1MiB")
    assert status == 200 and len(blob) == 2**20
    assert len(zlib.compress(blob, 9)) > 0.99 * len(blob), "a probe must not be compressible"
    assert get(f"{server}/probe/1MiB")[1] != blob, "each probe is fresh random bytes"
    assert get(f"{server}/probe/0")[0] == 404
    assert get(f"{server}/probe/9999MiB")[0] == 404
    assert get(f"{server}/debian/pool/")[0] == 404, "no listings"
    assert get(f"{server}/debian/../../../etc/passwd")[0] == 404
    assert get(f"{server}/debian/%2e%2e/%2e%2e/%2e%2e/etc/passwd")[0] == 404


def test_the_lab_inventory_puts_the_mirror_on_a_lab_service_address() -> None:
    # The lab's svc:mirror binds the URL's host: an address of the lab of its own, not a name.
    inv, _ = load_valid(Path(__file__).resolve().parents[2] / "inventories" / "lab")
    assert inv.province is not None and inv.province.platform.mirror is not None
    host, port = inv.province.platform.mirror.netloc
    assert IPv4Address(host) in build_plan(inv).service_addresses
    assert port == 80
