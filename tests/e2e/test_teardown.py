"""Issue 3 acceptance 5: after `lab down` nothing of the lab is left (runs last: it takes the lab down)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from hazmon.lab import net
from hazmon.lab.datapath import DATAPATH_KIND
from hazmon.lab.plan import NS_PREFIX, ROOT_IF
from hazmon.lab.procs import alive

pytestmark = [pytest.mark.e2e, pytest.mark.lab_teardown]


def test_down_leaves_nothing_behind(lab):
    st = lab.state()
    records = list(st.processes.values())
    # What `up` made; the trackers and collectors tests started on the lab are recorded too, and
    # those still running must be stopped by `down` like the rest.
    made = [r for r in records if r.kind != DATAPATH_KIND]
    uppers = [lab.run_dir / "hosts" / h / "upper" for h in lab.plan.hosts]
    assert made and all(alive(r) for r in made), "the lab was up before the test"
    assert all(u.is_dir() for u in uppers)

    problems = lab.down()

    assert problems == []
    time.sleep(0.5)  # let a subreaper collect exited processes
    assert [r.name for r in records if alive(r)] == []
    assert net.lab_namespaces(NS_PREFIX) == []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert ROOT_IF not in links
    routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, check=True).stdout
    assert "198.18." not in routes and "198.19." not in routes
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(lab.run_dir) not in mounts and "/run/netns/hzl-" not in mounts
    assert not any(u.exists() for u in uppers)
    assert not lab.run_dir.exists()
    # Nothing runs from the lab's base image any more (an nspawn host left would show here).
    cmdlines = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdlines.append(p.read_bytes())
        except OSError:
            continue  # exited while we looked
    assert not any(b"systemd-nspawn" in c and str(lab.image_cache).encode() in c for c in cmdlines)
