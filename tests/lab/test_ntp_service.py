"""The lab's province NTP server (services.ntp_services): a real chronyd, as the lab starts it.

It runs in a private network namespace holding the platform's NTP address on its loopback, and
is asked the time with a plain SNTP client (RFC 4330) from an address inside and one outside the
allowed lab range.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hazmon.lab.services import ntp_services

NTP_ADDR = "198.18.0.14"

SNTP_CLIENT = textwrap.dedent("""\
    import socket, struct, sys, time
    src, dst, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(1)
    for _ in range(tries):  # chronyd may still be opening its socket
        s.sendto(b"\\x23" + 47 * b"\\0", (dst, 123))
        try:
            data = s.recv(512)
            break
        except TimeoutError:
            continue
    else:
        print("NO-ANSWER")
        sys.exit(0)
    secs, frac = struct.unpack("!II", data[40:48])
    print("MODE", data[0] & 7, "STRATUM", data[1], "OFFSET", secs - 2208988800 + frac / 2**32 - time.time())
    """)


def test_the_config_serves_the_lab_and_never_steers_the_clock(tmp_path: Path) -> None:
    (spec,) = ntp_services("hzl-prov", [NTP_ADDR], tmp_path)
    assert spec.name == "svc:chrony" and spec.ns == "hzl-prov"
    assert spec.listen == (NTP_ADDR, 123, "udp")
    assert "-x" in spec.argv and "-d" in spec.argv
    conf = (tmp_path / "chrony" / "chrony.conf").read_text()
    for line in (f"bindaddress {NTP_ADDR}", "allow 198.18.0.0/15", "local stratum 8", "cmdport 0"):
        assert line in conf.splitlines()
    # Its files are its own: never /run/chrony, where a machine chronyd (or Debian's init script) looks.
    for key in ("pidfile", "driftfile", "bindcmdaddress"):
        (value,) = [ln.split()[1] for ln in conf.splitlines() if ln.startswith(key + " ")]
        assert Path(value).parent == tmp_path / "chrony"
    assert oct((tmp_path / "chrony").stat().st_mode & 0o777) == "0o700"
    two = ntp_services("ns", [NTP_ADDR, "198.18.0.16"], tmp_path)
    assert [s.name for s in two] == ["svc:chrony", "svc:chrony-1"]


@pytest.mark.integration
def test_chronyd_answers_lab_clients_at_stratum_8_and_nobody_else(tmp_path: Path) -> None:
    # `make test` runs as root and installs chrony (deps/apt-packages.txt): without them this fails, never skips.
    assert os.geteuid() == 0, "run the tests as root (README): the NTP server runs in a network namespace"
    assert shutil.which("chronyd"), "chronyd is missing: scripts/bootstrap installs deps/apt-packages.txt"
    (spec,) = ntp_services("", [NTP_ADDR], tmp_path)
    client = tmp_path / "sntp.py"
    client.write_text(SNTP_CLIENT)
    log = tmp_path / "chronyd.log"
    script = textwrap.dedent(f"""\
        set -eu
        ip link set lo up
        ip addr add {NTP_ADDR}/32 dev lo
        ip addr add 192.0.2.1/32 dev lo
        {" ".join(spec.argv)} >{log} 2>&1 &
        PID=$!
        trap 'kill $PID' EXIT
        echo LAB $({sys.executable} {client} {NTP_ADDR} {NTP_ADDR} 20)
        echo OUTSIDE $({sys.executable} {client} 192.0.2.1 {NTP_ADDR} 3)
        """)
    res = subprocess.run(["unshare", "--net", "--fork", "bash", "-c", script], capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stderr + log.read_text()
    lines = dict(ln.split(" ", 1) for ln in res.stdout.splitlines())
    fields = lines["LAB"].split()
    assert fields[:4] == ["MODE", "4", "STRATUM", "8"], lines["LAB"]
    assert abs(float(fields[5])) < 1.0, "it serves this machine's clock"
    assert lines["OUTSIDE"] == "NO-ANSWER", "allow 198.18.0.0/15 only"
    text = log.read_text()
    assert "Disabled control of system clock" in text, text
