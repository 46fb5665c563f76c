"""Benchmarks of the lab's NVR, GB/T 28181 registrar and switch simulators (run: .venv/bin/python bench/bench_video.py).

1. start-up: spawn of `python -m hazmon.lab.sim.<name>` until its TCP port answers, and its
   resident set (VmRSS) once serving: the lab runs one NVR and one switch per enterprise and one
   registrar for the province, so this is what a 40-gateway lab pays;
2. registrar: REGISTER (401 + authorised 200) and MANSCDP keepalives from many device IDs, one
   UDP client, as transactions/s;
3. NVR: ISAPI GET deviceInfo with digest auth through urllib (two HTTP exchanges each), as
   requests/s; and the time from the PUT of GB/T 28181 access to the registration at the registrar;
4. switch: netmiko (huawei, hp_comware) log-in + `display interface brief`, and a 4-line
   send_config_set, in seconds (netmiko's own fixed waits dominate).
Only loopback is used.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from netmiko import ConnectHandler

from hazmon.lab.sim import sip
from hazmon.lab.sim.common import write_secret
from hazmon.testing.procs import free_port, stop, wait_port

LAB = Path(__file__).resolve().parents[1] / "inventories" / "lab"
if not LAB.exists():  # run from elsewhere than bench/
    LAB = Path("/work/main/inventories/lab")
SERVER_ID, DOMAIN = "51000000002006000001", "5100000000"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(tmp: Path, name: str, args: list[str], tcp_port: int) -> tuple[subprocess.Popen, float]:
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", f"hazmon.lab.sim.{name}", "--inventory", str(LAB),
                             "--bind", "127.0.0.1", *args], stdout=subprocess.DEVNULL,
                            stderr=(tmp / f"{name}.log").open("w"))
    wait_port("127.0.0.1", tcp_port, timeout=30)
    return proc, time.monotonic() - start


def registrar_rate(port: int, password: str, devices: int = 200, beats: int = 5) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        host, lport = sock.getsockname()
        count, start = 0, time.monotonic()

        def send(method: str, dev: str, extra: list[tuple[str, str]], body: bytes = b"") -> sip.SipMessage:
            nonlocal count
            req = sip.request(method, f"sip:{SERVER_ID}@{DOMAIN}", [
                ("Via", f"SIP/2.0/UDP {host}:{lport};rport;branch={sip.new_branch()}"),
                ("From", f"<sip:{dev}@{DOMAIN}>;tag=1"), ("To", f"<sip:{dev}@{DOMAIN}>"),
                ("Call-ID", f"{dev}@{host}"), ("CSeq", f"1 {method}"), *extra], body)
            sock.sendto(req.encode(), ("127.0.0.1", port))
            while True:
                msg = sip.parse(sock.recvfrom(65536)[0])
                if not msg.is_request and msg.branch == req.branch:
                    count += 1
                    return msg

        for n in range(devices):
            dev = f"51010000001186{n:06d}"
            first = send("REGISTER", dev, [("Expires", "3600")])
            creds = sip.authorize(sip.Challenge.parse(first.get("WWW-Authenticate") or ""), username=dev,
                                  password=password, method="REGISTER", uri=f"sip:{SERVER_ID}@{DOMAIN}")
            assert send("REGISTER", dev, [("Expires", "3600"), ("Authorization", creds.header())]).status == 200
            for sn in range(beats):
                assert send("MESSAGE", dev, [("Content-Type", sip.MANSCDP_TYPE)], sip.keepalive(sn, dev)).status == 200
        return count / (time.monotonic() - start)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sip_pw, nvr_pw, sw_pw = (secrets.token_hex(8) for _ in range(3))
        sip_port, reg_http, nvr_http, sw_port, sw2_port = udp_port(), free_port(), free_port(), free_port(), free_port()
        procs: list[subprocess.Popen] = []
        try:
            reg, t_reg = spawn(tmp, "registrar", ["--port", str(sip_port), "--http-port", str(reg_http),
                                                  "--state-dir", str(tmp / "reg"),
                                                  "--secret-file", str(write_secret(tmp / "s1", sip_pw))], reg_http)
            procs.append(reg)
            nvr, t_nvr = spawn(tmp, "nvr", ["--enterprise", "labe0001", "--nvr", "nvr1", "--port", str(nvr_http),
                                            "--state-dir", str(tmp / "nvr"),
                                            "--secret-file", str(write_secret(tmp / "s2", nvr_pw))], nvr_http)
            procs.append(nvr)
            sw, t_sw = spawn(tmp, "switch", ["--enterprise", "labe0001", "--port", str(sw_port),
                                             "--state-dir", str(tmp / "sw"),
                                             "--secret-file", str(write_secret(tmp / "s3", sw_pw))], sw_port)
            procs.append(sw)
            sw2, t_sw2 = spawn(tmp, "switch", ["--enterprise", "labe0004", "--port", str(sw2_port),
                                               "--state-dir", str(tmp / "sw"),
                                               "--secret-file", str(write_secret(tmp / "s3", sw_pw))], sw2_port)
            procs.append(sw2)
            time.sleep(0.5)
            print("start-up to ready, resident memory:")
            for name, proc, t in (("registrar", reg, t_reg), ("nvr", nvr, t_nvr), ("switch huawei", sw, t_sw),
                                  ("switch h3c", sw2, t_sw2)):
                print(f"  {name:<24} {t:6.2f} s  {rss_mb(proc.pid):6.1f} MB")

            rate = registrar_rate(sip_port, sip_pw)
            print(f"registrar: {rate:,.0f} SIP transactions/s (200 devices x (2 REGISTER + 5 keepalives))")
            print(f"  registrar RSS with 200 devices: {rss_mb(reg.pid):.1f} MB")

            manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
            manager.add_password(None, f"http://127.0.0.1:{nvr_http}", "admin", nvr_pw)
            opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(manager))
            n, start = 100, time.monotonic()
            for _ in range(n):
                opener.open(f"http://127.0.0.1:{nvr_http}/ISAPI/System/deviceInfo").read()
            print(f"nvr: {n / (time.monotonic() - start):,.0f} ISAPI digest GETs/s (urllib, 2 exchanges each)")
            body = (f"<SIPServer><localPort>{udp_port()}</localPort><GB28181><enabled>true</enabled>"
                    f"<registrar>127.0.0.1</registrar><registrarPort>{sip_port}</registrarPort>"
                    f"<serverId>{SERVER_ID}</serverId><serverDomain>{DOMAIN}</serverDomain>"
                    f"<authID>51010000001186000001</authID><password>{sip_pw}</password>"
                    f"<heartbeatTime>1</heartbeatTime></GB28181></SIPServer>").encode()
            start = time.monotonic()
            opener.open(urllib.request.Request(f"http://127.0.0.1:{nvr_http}/ISAPI/System/Network/SIP",
                                               data=body, method="PUT")).read()
            state = tmp / "reg" / "registrations.json"
            while "51010000001186000001" not in json.loads(state.read_text())["devices"]:
                time.sleep(0.005)
            print(f"nvr: PUT of GB/T 28181 access to registered at the registrar: "
                  f"{(time.monotonic() - start) * 1000:.0f} ms")

            cases = (("huawei", sw_port, "GigabitEthernet0/0/3", "port default vlan 100"),
                     ("hp_comware", sw2_port, "GigabitEthernet1/0/2", "port access vlan 100"))
            for device_type, port, iface, vlan in cases:
                start = time.monotonic()
                conn = ConnectHandler(device_type=device_type, host="127.0.0.1", port=port, username="admin",
                                      password=sw_pw)
                conn.send_command("display interface brief")
                t_login = time.monotonic() - start
                start = time.monotonic()
                conn.send_config_set([f"interface {iface}", "description bench", "port link-type access", vlan])
                t_config = time.monotonic() - start
                conn.disconnect()
                print(f"switch {device_type}: log-in + display interface brief {t_login:.2f} s; "
                      f"send_config_set (4 lines) {t_config:.2f} s")
            print(f"  switch RSS after sessions: {rss_mb(sw.pid):.1f} MB / {rss_mb(sw2.pid):.1f} MB")
        finally:
            for proc in reversed(procs):
                stop(proc)


if __name__ == "__main__":
    main()
