"""Issue 3 point 6: faults take effect and are undone (link-down/up, degrade/restore, reboot)."""

from __future__ import annotations

import socket

import pytest

from hazmon.lab import faults, net

pytestmark = pytest.mark.e2e


def reachable(address: str) -> bool:
    """Whether the host's sshd answers a TCP connect within 2 s."""
    try:
        with socket.create_connection((address, 22), timeout=2):
            return True
    except OSError:
        return False


def test_link_down_cuts_the_site_and_link_up_restores_it(lab, line_fault):
    host = lab.plan.hosts["labe0005-agw"]
    assert reachable(str(host.address))
    line_fault("link-down", "labe0005")
    assert not reachable(str(host.address))
    assert "link:line-labe0005" in lab.state().faults
    faults.link_up(lab, "labe0005")
    assert reachable(str(host.address))


def test_degrade_and_restore_set_the_shaping(lab, line_fault):
    line = lab.plan.site_for("labe0003").line
    line_fault("degrade", "labe0003", 12)
    assert net.shaped_rate(line.ns_b, line.if_b) == pytest.approx(12)
    assert net.shaped_rate(line.ns_a, line.if_a) == pytest.approx(12)
    faults.restore(lab, "labe0003")
    assert net.shaped_rate(line.ns_b, line.if_b) == pytest.approx(30)


def test_reboot_keeps_what_the_host_wrote(lab, ssh):
    host = "labe0006-agw"
    assert ssh(host, "echo kept > /etc/hazmon-reboot-mark").returncode == 0
    before = lab.state().processes[f"host:{host}"].pid
    lab.reboot(host)
    assert lab.state().processes[f"host:{host}"].pid != before
    assert ssh(host, "cat /etc/hazmon-reboot-mark").stdout.strip() == "kept"
