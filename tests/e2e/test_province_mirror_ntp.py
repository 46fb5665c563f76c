"""On the lab: the province's package mirror and NTP server as lab hosts see them, and preflight's
live-check modules (hazmon_dcs_probe, hazmon_link_probe) run on the bare gateways by `ansible`.

Nothing here changes a host: apt works in /tmp directories of its own (download only), the
probes are read-only. A lab already up (brought up by someone else) is used and left up.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from hazmon.lab import mirror
from hazmon.lab.hosts import ssh_argv
from hazmon.lab.lab import Lab
from hazmon.testing.adhoc import ansible_adhoc

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LAB_INVENTORY = REPO / "inventories" / "lab"


@pytest.fixture(scope="module")
def running_lab(request: pytest.FixtureRequest) -> Lab:
    lab = Lab(inventory_root=LAB_INVENTORY, log=lambda msg: None)
    if lab.state().exists():
        return lab  # someone's lab: use it as it is, never take it down
    return request.getfixturevalue("lab")


@pytest.fixture(scope="module")
def lab_inventory(running_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("inv") / "lab.ini"
    path.write_text(running_lab.ansible_inventory())
    yield path


def ssh(lab: Lab, host: str, command: str, timeout: int = 120) -> subprocess.CompletedProcess:
    address = str(lab.plan.hosts[host].address)
    return subprocess.run(ssh_argv(lab.ssh_key, address, command), capture_output=True, text=True, timeout=timeout)


def test_a_lab_host_gets_time_from_the_province_ntp(running_lab: Lab) -> None:
    p = running_lab.inventory.province
    assert p is not None
    (server,) = p.platform.ntp
    sntp = (
        "import socket,struct,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);"
        f"s.sendto(b'\\x23'+47*b'\\0',('{server}',123));d=s.recv(512);"
        "t=struct.unpack('!II',d[40:48]);print(d[0]&7,d[1],t[0]-2208988800+t[1]/2**32-time.time())"
    )
    res = ssh(running_lab, "labe0004-agw", f'python3 -c "{sntp}"')
    assert res.returncode == 0, res.stderr
    mode, stratum, offset = res.stdout.split()
    assert (mode, stratum) == ("4", "8")
    assert abs(float(offset)) < 1.0


def test_a_lab_host_downloads_the_rollouts_packages_from_the_signed_mirror(running_lab: Lab) -> None:
    p = running_lab.inventory.province
    assert p is not None and p.platform.mirror is not None
    url = p.platform.mirror.url
    # apt's own state and archives in /tmp: the host stays as it was (a download, no install).
    script = f"""set -e
D=$(mktemp -d /tmp/hz-mirror-test.XXXX); trap 'rm -rf $D' EXIT; chmod 755 $D  # apt fetches as _apt
mkdir -p $D/lists/partial $D/arch/partial $D/parts
echo "deb {url} {p.platform.mirror.suite} {' '.join(p.platform.mirror.components)}" >$D/sources.list
O="-o Dir::Etc::SourceList=$D/sources.list -o Dir::Etc::SourceParts=$D/parts -o Dir::State::Lists=$D/lists"
O="$O -o Dir::Cache::Archives=$D/arch -o Acquire::Languages=none -o APT::Install-Recommends=false"
apt-get $O update
apt-get $O install -y --download-only {' '.join(mirror.PACKAGES)}
ls $D/arch | sed -n 's/^/DEB /p'
"""
    res = ssh(running_lab, "labe0004-aibox", script, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert f"Get:1 {url} bookworm InRelease" in out
    assert not [ln for ln in out.splitlines() if ln.startswith(("W:", "E:"))], out[-3000:]
    # (package, version) of what apt fetched (archive names are NAME_VERSION_ARCH.deb, ":" as %3a) are
    # those the mirror carries, the suite's own.
    carried = {tuple(line.split()[:2]) for line in mirror.Mirror(mirror.DEFAULT_CACHE, None).manifest()}
    fetched = {
        tuple(unquote(ln.split()[1]).split("_")[:2])
        for ln in out.splitlines()
        if ln.startswith("DEB ") and ln.endswith(".deb")
    }
    assert fetched, "a bare host needs packages from the mirror"
    assert fetched <= carried


@pytest.mark.parametrize(
    ("host", "args", "answer"),
    [
        ("labe0001-daq", "name=dcs protocol=modbus_tcp host=198.19.1.20 port=502 slave_id=1 register=0", "value"),
        ("labe0002-daq", "name=dcs protocol=opc endpoint=opc.tcp://198.19.2.21:4840/hazmon/", "acknowledge"),
        ("labe0003-daq", "name=gds protocol=modbus_rtu serial_port=/dev/ttyS1 baud=9600 parity=N slave_id=3", "value"),
    ],
)
def test_dcs_probe_on_the_daq_gateways(lab_inventory: Path, host: str, args: str, answer: str) -> None:
    result = ansible_adhoc(host, "hazmon_dcs_probe", args, inventory=lab_inventory)
    assert result["failed"] is False, result
    assert result["changed"] is False
    if result["probed"]:
        assert answer in result and result["latency_ms"] < 1000
    else:  # a rolled-out RTU gateway: its collector is the line's master, and the probe says so
        assert "modbus_rtu" in args and [b["name"] for b in result["busy"]] == ["hazmon-collecto"], result


def test_dcs_probe_names_what_the_slave_refused(lab_inventory: Path) -> None:
    result = ansible_adhoc("labe0001-daq", "hazmon_dcs_probe",
                           "name=dcs protocol=modbus_tcp host=198.19.1.20 port=502 slave_id=1 register=9000",
                           inventory=lab_inventory)
    assert result["failed"] is True
    assert result["msg"] == ("source dcs: modbus_tcp 198.19.1.20:502 slave 1 function 3 (holding register 9000): "
                             "Modbus exception code 2 (illegal data address)")


def test_link_probe_passes_a_20_mbit_line_and_refuses_the_8_mbit_one(running_lab: Lab, lab_inventory: Path) -> None:
    p = running_lab.inventory.province
    assert p is not None and p.platform.mirror is not None
    probe = p.platform.mirror.url.rsplit("/", 1)[0] + "/probe/8MiB"
    # labe0004: a 20 Mbit/s line nobody else's tests load (the probe measures what the line has left:
    # another host of the same site downloading packages halves the reading, rightly).
    good = ansible_adhoc("labe0004-agw", "hazmon_link_probe", f"url={probe} min_mbps=20 tolerance=0.1",
                         inventory=lab_inventory)
    assert good["failed"] is False, good
    assert 18.0 <= good["mbps"] <= 20.0
    bad = ansible_adhoc("labe0006-agw", "hazmon_link_probe", f"url={probe} min_mbps=20 tolerance=0.1",
                        inventory=lab_inventory)
    assert bad["failed"] is True and bad["mbps"] < 8.0
    assert "below 18.0 Mbit/s" in bad["msg"] and "N2" in bad["msg"]
