"""`Lab.reset_hosts`: several hosts made bare at once (stop all, wipe, boot all, one wait), as the
rollout tests do to a batch. labe0006 is used: not ready (N2), so no rollout ever touches it."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.e2e

ENTERPRISE = "labe0006"


def test_reset_hosts_makes_every_host_of_an_enterprise_bare_in_parallel(lab, ssh):
    hosts = [h.name for h in lab.plan.hosts_of(ENTERPRISE)]
    assert len(hosts) == 3
    for host in hosts:
        assert ssh(host, "touch /etc/hazmon-rolled-out").returncode == 0
    before = {h: lab.state().processes[f"host:{h}"].pid for h in hosts}

    started = time.monotonic()
    lab.reset_hosts(hosts)
    took = time.monotonic() - started

    st = lab.state()
    assert all(st.processes[f"host:{h}"].pid != before[h] for h in hosts)  # each one booted again
    for host in hosts:
        done = ssh(host, "test -e /etc/hazmon-rolled-out; echo $?; hostname")
        assert done.stdout.split() == ["1", host], done.stdout + done.stderr
    # One stop and one boot for all: a sequential reset costs (stop + boot) per host.
    assert took < 30, f"reset of {len(hosts)} hosts took {took:.1f} s"
