"""`hazmon rollout`: runs the project's playbooks on a batch and reads the outcome from the ledger.

A run is one ansible-playbook invocation of site.yml's plays (province, preflight, rollout,
verify) under one run id. The waves are cut on enterprise boundaries by preflight's last task
(filter hazmon_rollout_serial, over serial_for below): Ansible's `serial` counts hosts, an
enterprise has several of different kinds, and only after preflight is it known which enterprises
go on. `site.yml` run by a plain ansible-playbook (AWX) gets the same waves.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.inventory.ansible import ROLES, build, group_enterprise
from hazmon.inventory.loader import Inventory
from hazmon.inventory.readiness import Readiness
from hazmon.inventory.secrets import VAULT_PASS_FILE
from hazmon.rollout import ledger
from hazmon.rollout.lock import EnvironmentLock

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = PROJECT_ROOT / "playbooks"  # where Runner.run finds a playbook given by name
SITE = PROJECT_ROOT / "site.yml"
DEFAULT_WAVES = ("1", "25%", "100%")
DEFAULT_MAX_FAIL_PERCENTAGE = 50  # the run goes on while at most half a wave's enterprises failed (verdict.py)
PROVINCE_GROUP = "role_province_broker"

# Ansible's own strategy, instead of ansible.cfg's Mitogen (which may lag a new ansible-core).
PLAIN_STRATEGY = "linear"

# ansible-core's own defaults for what ansible.cfg tunes (for `make bench`'s comparison): env
# settings override the file, so the plugins and paths stay and only the tuning goes.
ANSIBLE_DEFAULTS_ENV = {
    "ANSIBLE_PIPELINING": "False",
    "ANSIBLE_FORKS": "5",
    "ANSIBLE_GATHERING": "implicit",
    "ANSIBLE_CACHE_PLUGIN": "memory",
    "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=60s",
    "ANSIBLE_STRATEGY": PLAIN_STRATEGY,
}


# ... and what the plays set themselves (the fact subset is a play keyword since ansible-core 2.18).
ANSIBLE_DEFAULTS_VARS = {"rollout_gather_subset": "all"}


class RolloutError(RuntimeError):
    """The rollout cannot start (no such batch, no ansible-playbook, ...)."""


@dataclass
class Plan:
    """What one `hazmon rollout --batch N` is about."""

    inventory: Inventory
    readiness: list[Readiness]
    batch: int
    enterprises: list[str]  # codes, sorted by slug (the order of `order: sorted` host names)
    skipped_done: list[str] = field(default_factory=list)  # verified in an earlier run


def ansible_bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def inventory_source(root: Path) -> Path:
    src = root / "hazmon.yml"
    if not src.exists():
        raise RolloutError(f"{src}: no hazmon inventory source (plugin: hazmon) in {root}")
    return src


def enterprise_hosts(inv: Inventory, readiness: list[Readiness]) -> dict[str, list[str]]:
    """Enterprise code -> its device hosts (the names the inventory plugin gives them)."""
    data = build(inv, readiness)
    by_slug = {e.slug: e.code for e in inv.enterprises}
    out: dict[str, list[str]] = {}
    for group, hosts in data.groups.items():
        if group.startswith("enterprise_"):
            out[by_slug[group[len("enterprise_"):]]] = sorted(hosts)
    return out


def wave_sizes(total: int, waves: Sequence[str]) -> list[int]:
    """Ansible's `serial` semantics over enterprises: counts or percentages of the total, the last
    entry repeating until everything is placed; a percentage rounds down but is at least 1."""
    if total <= 0:
        return []
    sizes: list[int] = []
    placed, i = 0, 0
    while placed < total:
        spec = str(waves[min(i, len(waves) - 1)]).strip()
        if spec.endswith("%"):
            n = max(1, math.floor(total * float(spec[:-1]) / 100))
        else:
            n = int(spec)
            if n < 1:
                raise RolloutError(f"wave size {spec!r}: must be at least 1")
        n = min(n, total - placed)
        sizes.append(n)
        placed += n
        i += 1
    return sizes


def serial_for(enterprises: Sequence[str], hosts: dict[str, list[str]], waves: Sequence[str]) -> list[int]:
    """The play's `serial` as host counts, so that every wave holds whole enterprises."""
    out, start = [], 0
    for size in wave_sizes(len(enterprises), waves):
        out.append(sum(len(hosts[e]) for e in enterprises[start:start + size]))
        start += size
    return out


def limit_for(inv: Inventory, codes: Sequence[str], *extra: str) -> str:
    by_code = {e.code: e for e in inv.enterprises}
    return ":".join([*(group_enterprise(by_code[c]) for c in codes), *extra])


@dataclass
class Runner:
    """Runs ansible-playbook for an inventory folder, recording into one ledger under one run id."""

    root: Path
    ledger_file: Path
    run_id: str = field(default_factory=ledger.new_run_id)
    verbosity: int = 0
    ansible_defaults: bool = False  # bench: ansible-core's defaults instead of ansible.cfg's tuning
    plain_strategy: bool = False  # Ansible's linear strategy instead of Mitogen's
    extra_env: dict[str, str] = field(default_factory=dict)
    # Where ansible's own output goes: our stdout, our stderr (when stdout carries JSON), or
    # captured into `output` (tests).
    stream: str = "stdout"
    output: list[str] = field(default_factory=list)
    # The environment's lock this run holds (hazmon.rollout.lock): handed to ansible-playbook, whose
    # ledger callback adopts it instead of asking for it again.
    lock: EnvironmentLock | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"),
            ledger.ENV_LEDGER: str(self.ledger_file),
            ledger.ENV_RUN: self.run_id,
            "PYTHONUNBUFFERED": "1",
        })
        if self.plain_strategy:
            env["ANSIBLE_STRATEGY"] = PLAIN_STRATEGY
        if self.ansible_defaults:
            env.update(ANSIBLE_DEFAULTS_ENV)
        if self.lock is not None:
            env.update(self.lock.child_env())
        env.update(self.extra_env)
        return env

    def argv(self, playbooks: Sequence[str], limit: str | None, extra_vars: dict | None = None,
             check: bool = False) -> list[str]:
        argv = [ansible_bin("ansible-playbook"), "-i", str(inventory_source(self.root))]
        vault_pass = self.root / VAULT_PASS_FILE
        if vault_pass.exists():
            argv += ["--vault-password-file", str(vault_pass)]
        if limit:
            argv += ["--limit", limit]
        extra = {**(ANSIBLE_DEFAULTS_VARS if self.ansible_defaults else {}), **(extra_vars or {})}
        if extra:
            argv += ["-e", json.dumps(extra)]
        if check:
            argv += ["--check", "--diff"]
        if self.verbosity:
            argv.append("-" + "v" * self.verbosity)
        argv += [str(PLAYBOOKS / p) for p in playbooks]
        return argv

    def run(self, playbooks: Sequence[str], limit: str | None, extra_vars: dict | None = None,
            check: bool = False) -> int:
        argv = self.argv(playbooks, limit, extra_vars, check)
        fds = (self.lock.fd,) if self.lock is not None else ()
        if self.stream in ("stdout", "stderr"):
            out = sys.stdout if self.stream == "stdout" else sys.stderr
            out.flush()
            return subprocess.run(argv, env=self.env(), cwd=PROJECT_ROOT, check=False, stdout=out,
                                  pass_fds=fds).returncode
        proc = subprocess.run(argv, env=self.env(), cwd=PROJECT_ROOT, check=False, capture_output=True,
                              text=True, pass_fds=fds)
        self.output.append(proc.stdout + proc.stderr)
        return proc.returncode

    def records(self) -> list[ledger.Record]:
        return [r for r in ledger.read(self.ledger_file) if r.run == self.run_id]


def passed_gate(records: Sequence[ledger.Record], gate: str, codes: Sequence[str],
                hosts: dict[str, list[str]]) -> list[str]:
    """The enterprises every one of whose hosts passed `gate` in these records."""
    ok = {(r.host) for r in records if r.gate == gate and r.status == ledger.Status.PASSED}
    bad = {r.host for r in records if r.gate == gate and r.status in (ledger.Status.FAILED,
                                                                      ledger.Status.UNREACHABLE)}
    return [c for c in codes if hosts[c] and all(h in ok and h not in bad for h in hosts[c])]


ROLE_GROUPS = tuple(f"role_{r}" for r in ROLES)
