"""Verify gates: pytest-testinfra tests over the hosts of a verify play.

playbooks/verify.yml writes a plan (hosts, roles, how to reach them) and runs pytest here once for
the whole play; each test module says which device roles it applies to (ROLES) and is run once per
such host. The results file maps each host to the number of gates run and the failed ones, with
the reason, so that Ansible fails exactly the hosts whose gates failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from hazmon.inventory.loader import Inventory
from hazmon.inventory.model import Enterprise
from hazmon.inventory.validate import load_valid

# The boxes Ansible (and so the gates) reach over SSH; the NVR and the switch are read through
# their own protocols.
from hazmon.rollout.gateway import BOX_ROLES


@dataclass(frozen=True)
class Target:
    name: str
    role: str
    enterprise: str
    address: str
    user: str = "root"
    key: str = ""
    ssh_args: str = ""
    device: str = ""  # the NVR's or the switch's name in the inventory

    def __str__(self) -> str:
        return self.name


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gate-plan", required=True, help="plan written by playbooks/verify.yml")
    parser.addoption("--gate-results", required=True, help="where to write per-host results (JSON)")
    parser.addoption("--tracker-token-file", default=None,
                     help="0600 file holding the tracker API's bearer token (the vault's)")


def _plan(config: pytest.Config) -> dict[str, Any]:
    if not hasattr(config, "_gate_plan"):
        config._gate_plan = yaml.safe_load(Path(config.getoption("--gate-plan")).read_text())  # type: ignore[attr-defined]
    return config._gate_plan  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    roles = getattr(metafunc.module, "ROLES", ())
    targets = [Target(**h) for h in _plan(metafunc.config)["hosts"] if h["role"] in roles]
    metafunc.parametrize("target", targets, ids=[t.name for t in targets])


@pytest.fixture(scope="session")
def plan(pytestconfig: pytest.Config) -> dict[str, Any]:
    return _plan(pytestconfig)


@pytest.fixture(scope="session")
def platform(plan: dict[str, Any]) -> dict[str, Any]:
    return plan["platform"]


@pytest.fixture(scope="session")
def inventory(plan: dict[str, Any]) -> Inventory:
    inv, _ = load_valid(Path(plan["inventory_root"]))
    return inv


@pytest.fixture
def enterprise(inventory: Inventory, target: Target) -> Enterprise:
    return next(e for e in inventory.enterprises if e.code == target.enterprise)


def _ssh_host(target: Target, sockets: Path) -> Any:
    """The host over SSH, as Ansible reaches it (same address, user, key and options)."""
    return testinfra.get_host(
        f"ssh://{target.user}@{target.address}",
        ssh_identity_file=target.key or None,
        ssh_extra_args=target.ssh_args or None,
        controlpath=str(sockets / target.name),  # testinfra %-formats the command
        controlpersist=120,
    )


@pytest.fixture(scope="session")
def _connections(tmp_path_factory: pytest.TempPathFactory, plan: dict[str, Any]) -> dict[str, Any]:
    """One SSH connection per host for the whole run (a ControlMaster socket each), not one per check,
    all opened at once: the checks themselves run one after the other, and one handshake after the
    other as they reach each box was a third of the gates' time. A box that does not answer fails
    its own checks."""
    sockets = tmp_path_factory.mktemp("ssh")
    targets = [Target(**h) for h in plan["hosts"] if h["role"] in BOX_ROLES]
    hosts = {t.name: _ssh_host(t, sockets) for t in targets}
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        list(pool.map(lambda host: host.run("true"), hosts.values()))
    return {"dir": sockets, "hosts": hosts}


@pytest.fixture
def box(target: Target, _connections: dict[str, Any]) -> Any:
    """The host over SSH (see _connections)."""
    hosts = _connections["hosts"]
    if target.name not in hosts:
        hosts[target.name] = _ssh_host(target, _connections["dir"])
    return hosts[target.name]


@pytest.fixture(scope="session")
def tracker_token(pytestconfig: pytest.Config) -> str | None:
    """The tracker's JSON API answers only with the vault's token; the verify tasks hand it over in
    a private file (never argv, never the plan)."""
    file = pytestconfig.getoption("--tracker-token-file")
    return Path(file).read_text(encoding="utf-8").strip() if file else None


@pytest.fixture(scope="session")
def wait(plan: dict[str, Any]) -> Callable[[Callable[[], Any], str], Any]:
    """Retry a check until it holds or the plan's timeout passes; the last failure is the reason.
    One deadline for the whole run: a site whose data never arrives fails once, not once per check."""
    deadline = time.monotonic() + float(plan.get("timeout", 60))

    def until(check: Callable[[], Any], what: str) -> Any:
        while True:
            try:
                return check()
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: {exc}") from exc
            time.sleep(1)

    return until


# ------------------------------------------------------------------ results per host


def pytest_configure(config: pytest.Config) -> None:
    config._gate_results = {}  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("target") if callspec else None
    if target is None or (report.when != "call" and report.passed):
        return
    entry = item.config._gate_results.setdefault(target.name, {"ran": 0, "failed": []})  # type: ignore[attr-defined]
    if report.when == "call":
        entry["ran"] += 1
    if report.failed:
        reason = str(call.excinfo.value).strip().splitlines()[0] if call.excinfo else "failed"
        entry["failed"].append(f"{item.originalname}: {reason or call.excinfo.typename if call.excinfo else ''}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = Path(session.config.getoption("--gate-results"))
    path.write_text(json.dumps(session.config._gate_results, ensure_ascii=False, indent=1))  # type: ignore[attr-defined]
