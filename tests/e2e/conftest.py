"""Fixtures for end-to-end tests on the lab: one lab for the session, faults that are always undone.

The lab is the real thing (nspawn hosts, namespaces, tc, simulators), brought up once per session
from inventories/lab and brought down at the end. A fault fixture returns a function that injects
a fault and registers its undo, run by the fixture's finalizer whatever the test did.

The session owns the lab's state: the tests assume the lab as `lab up` makes it (bare gateways, no
fault, no tracker or collector of anyone else's, a broker without old sessions). A lab already up
when the session starts is not that: `make demo` leaves batch 1 rolled out (its collectors hold
labe0003's RTU line and publish labe0001's data into the tests' trackers), a killed session leaves
its trackers, collectors and faults. So such a lab is taken down first (every process it recorded,
the trackers and collectors started on it included, stopped by PID) and brought up again.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hazmon.inventory.secrets import ensure_lab_vault
from hazmon.lab import faults
from hazmon.lab.hosts import ssh_argv
from hazmon.lab.lab import Lab

REPO = Path(__file__).resolve().parents[2]
LAB_INVENTORY = REPO / "inventories" / "lab"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that take the lab down run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab_teardown: takes the session lab down; runs last")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    lab = Lab(inventory_root=LAB_INVENTORY, log=lambda msg: None)
    if lab.state().exists():
        for problem in lab.down():  # not the lab the tests assume: see the module's docstring
            warnings.warn(f"taking down the lab left up before the session: {problem}", stacklevel=1)
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def vault(lab: Lab) -> dict[str, str]:
    return ensure_lab_vault(lab.inventory)


@pytest.fixture
def ssh(lab: Lab) -> Callable[[str, str], subprocess.CompletedProcess]:
    """Run a command on a lab host (by name) over SSH with the lab key."""

    def run(host: str, command: str) -> subprocess.CompletedProcess:
        h = lab.plan.hosts[host]
        return subprocess.run(
            ssh_argv(lab.ssh_key, str(h.address), command), capture_output=True, text=True, timeout=30
        )

    return run


@pytest.fixture
def line_fault(lab: Lab) -> Iterator[Callable[..., None]]:
    """inject(kind, enterprise[, rate]): link-down or degrade; the line is restored afterwards."""
    touched: list[str] = []

    def inject(kind: str, enterprise: str, rate: float | None = None) -> None:
        touched.append(enterprise)
        if kind == "link-down":
            faults.link_down(lab, enterprise)
        elif kind == "degrade":
            assert rate is not None
            faults.degrade(lab, enterprise, rate)
        else:
            raise ValueError(kind)

    yield inject
    for enterprise in touched:
        faults.restore(lab, enterprise)


@pytest.fixture
def dcs_fault(lab: Lab) -> Iterator[Callable[..., dict]]:
    """inject(kind, enterprise, tag_or_source): dcs stop/freeze/out_of_range, undone afterwards."""
    undo: list[Callable[[], object]] = []

    def inject(kind: str, enterprise: str, target: str | None = None) -> dict:
        if kind == "stop":
            faults.dcs_command(lab, enterprise, "stop", target)
            undo.append(lambda: faults.dcs_command(lab, enterprise, "resume", target))
            return {}
        assert target is not None
        undo.append(lambda: faults.dcs_tag(lab, enterprise, "unfreeze", target))
        return faults.dcs_tag(lab, enterprise, kind, target)

    yield inject
    for step in reversed(undo):
        step()
