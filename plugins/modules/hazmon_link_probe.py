#!/usr/bin/python
# hazmon: measure a site's line by downloading a blob from the province (preflight live check, N2).
# Runs ON the gateway (python3 3.11, stdlib only): the logic lives here, not in hazmon.
from __future__ import annotations

DOCUMENTATION = r"""
module: hazmon_link_probe
short_description: Measure the download rate from the province to this host and compare it with a minimum
description:
  - Downloads an incompressible blob over HTTP (the province mirror's C(/probe/8MiB)) and reports the
    measured TCP goodput in Mbit/s.
  - Fails when the rate is below O(min_mbps) reduced by O(tolerance) (the notice's N2 minimum for an
    enterprise's dedicated line is 20 Mbit/s).
  - Why a tolerance? A line shaped to exactly 20 Mbit/s carries 20 Mbit/s of frames, not of payload.
    Ethernet, IP and TCP headers (with timestamps) take 66 bytes of each 1514-byte frame, 4.4 %, so
    the payload can reach at most 19.1 Mbit/s, and the shaper's token bucket (tc tbf) and TCP's
    pacing cost a little more; TCP goodput measured about 18.9 Mbit/s on a 20 Mbit/s tbf-shaped line
    (iperf3, the lab's recipe in LAB.md). A tolerance of 0.1 (pass at 18 Mbit/s and above) accepts
    such a line and still refuses a degraded one (8 Mbit/s).
  - Read-only. Never reports changed. Runs the measurement in check mode too (it changes nothing).
  - One measurement fills the line for a few seconds; run it once per host, never in a loop.
version_added: "0.5.0"
author: hazmon
options:
  url:
    description: URL of the probe blob, e.g. C(http://198.18.0.15/probe/8MiB).
    type: str
    required: true
  min_mbps:
    description: The minimum the line must carry, in Mbit/s (20 for an enterprise line, N2).
    type: float
    required: true
  tolerance:
    description: Fraction of O(min_mbps) the measurement may fall short by (protocol overhead, shaper).
    type: float
    default: 0.1
  timeout:
    description: Seconds to wait for the connection and for each read.
    type: float
    default: 30
  name:
    description: What is measured, for messages (e.g. the enterprise and its line).
    type: str
    default: line
"""

EXAMPLES = r"""
- name: Measure the dedicated line (N2)
  hazmon_link_probe:
    url: "{{ hazmon_platform.mirror.url | regex_replace('/debian/?$', '') }}/probe/8MiB"
    min_mbps: "{{ hazmon_notice.n2_line_min_mbps }}"
    tolerance: 0.1
    name: "{{ hazmon_enterprise }} dedicated line"
"""

RETURN = r"""
mbps:
  description: Measured goodput in Mbit/s (10^6 bits per second of HTTP body).
  type: float
  returned: when the download completed
bytes:
  description: Bytes of body received.
  type: int
  returned: always
seconds:
  description: Time from the first body byte to the last.
  type: float
  returned: when the download completed
threshold_mbps:
  description: The rate below which the module fails, O(min_mbps) * (1 - O(tolerance)).
  type: float
  returned: always
"""

import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

CHUNK = 64 * 1024


def threshold(min_mbps: float, tolerance: float) -> float:
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    return min_mbps * (1 - tolerance)


def mbps(nbytes: int, seconds: float) -> float:
    """Bits per second of payload, in Mbit/s (10^6): the unit carriers sell lines in."""
    return nbytes * 8 / seconds / 1e6 if seconds > 0 else float("inf")


def verdict(name: str, measured: float, min_mbps: float, tolerance: float) -> tuple[bool, str]:
    """(ok, sentence) for a measured rate against the minimum."""
    floor = threshold(min_mbps, tolerance)
    if measured >= floor:
        return True, f"{name}: {measured:.1f} Mbit/s measured, at least {floor:.1f} needed (N2 minimum {min_mbps:g})"
    return False, (
        f"{name}: {measured:.1f} Mbit/s measured, below {floor:.1f} Mbit/s "
        f"(N2 minimum {min_mbps:g} Mbit/s less {tolerance:.0%} for protocol overhead): "
        "the line is not fit for rollout; ask the carrier to restore it"
    )


def download(url: str, timeout: float) -> tuple[int, float, int | None, int]:
    """(body bytes, seconds, Content-Length, bytes timed) of a GET of `url`: the clock runs from the
    end of the first chunk to the last byte, over the bytes after the first chunk."""
    # No proxy: the measurement is of this host's own line to the province.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        first = resp.read(CHUNK)
        started = time.monotonic()
        # Connection set-up and the server's first write are not the line's rate.
        total = 0
        while True:
            data = resp.read(CHUNK)
            if not data:
                break
            total += len(data)
        elapsed = time.monotonic() - started
    return len(first) + total, elapsed, (int(length) if length is not None else None), total


def run(module: AnsibleModule) -> None:
    p = module.params
    name, url = p["name"], p["url"]
    try:
        floor = threshold(p["min_mbps"], p["tolerance"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": False, "url": url, "threshold_mbps": round(floor, 3), "bytes": 0}
    try:
        received, seconds, length, timed = download(url, p["timeout"])
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        module.fail_json(msg=f"{name}: cannot download {url}: {reason}", **result)
    result["bytes"] = received
    if length is not None and received != length:
        module.fail_json(msg=f"{name}: {url} ended after {received} of {length} bytes", **result)
    if timed < 1024 * 1024:
        module.fail_json(msg=f"{name}: {url} is too small to measure a line ({received} bytes; use 8MiB)", **result)
    rate = mbps(timed, seconds)
    result.update(mbps=round(rate, 2), seconds=round(seconds, 3))
    ok, msg = verdict(name, rate, p["min_mbps"], p["tolerance"])
    if not ok:
        module.fail_json(msg=msg, **result)
    module.exit_json(msg=msg, **result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "min_mbps": {"type": "float", "required": True},
            "tolerance": {"type": "float", "default": 0.1},
            "timeout": {"type": "float", "default": 30},
            "name": {"type": "str", "default": "line"},
        },
        supports_check_mode=True,
    )
    run(module)


if __name__ == "__main__":
    main()
