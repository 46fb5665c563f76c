"""The province's own lab hosts (the MQTT broker), configured as production's are: by the rollout's
playbook `playbooks/province.yml`, run with ansible-playbook from the venv against the lab's
inventory (the hazmon inventory plugin) and its vault.

The lab does not write the broker's accounts itself: what the rollout renders is what the lab's
gateways and tracker log in with, so the lab tests the role every time it comes up.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hazmon.inventory.secrets import VAULT_PASS_FILE
from hazmon.lab.hosts import connection_vars

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "province.yml"
PLAY_TIMEOUT = 600.0  # from a bare host: apt from the province mirror, a few seconds in practice

_RECAP = re.compile(r"^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$")


class PlayError(RuntimeError):
    pass


@dataclass(frozen=True)
class PlayResult:
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)  # host -> ok/changed/failed...
    log: Path | None = None

    @property
    def changed(self) -> int:
        return sum(r.get("changed", 0) for r in self.recap.values())


def parse_recap(text: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP lines of an ansible-playbook run: host -> {ok, changed, unreachable, ...}."""
    recap: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("PLAY RECAP")), None)
    if start is None:
        return recap
    for line in lines[start + 1 :]:
        m = _RECAP.match(line.strip())
        if m:
            recap[m.group(1)] = {k: int(v) for k, v in (kv.split("=") for kv in m.group(2).split())}
    return recap


def playbook_argv(inventory_root: Path, ssh_key: Path, playbook: Path = PLAYBOOK, *extra: str) -> list[str]:
    root = inventory_root.resolve()
    return [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(root / "hazmon.yml"),
        "--vault-password-file",
        str(root / VAULT_PASS_FILE),
        # This lab's connection, whatever the inventory's group_vars say (a synthetic inventory has
        # none; connection.yml names the default run dir's key): root with the run dir's key.
        "-e",
        json.dumps(connection_vars(ssh_key)),
        *extra,
        str(playbook),
    ]


def run_province_play(inventory_root: Path, ssh_key: Path, log: Path, *extra: str) -> PlayResult:
    """Run playbooks/province.yml; its output (no secret: every task seeing one is no_log) goes
    to `log`. Raises PlayError with the log's tail if the play fails."""
    if not PLAYBOOK.is_file():
        raise PlayError(f"{PLAYBOOK} is missing: the lab configures its broker with the rollout's playbook")
    argv = playbook_argv(inventory_root, ssh_key, PLAYBOOK, *extra)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, timeout=PLAY_TIMEOUT, check=False)
    text = log.read_text(encoding="utf-8", errors="replace")
    if done.returncode != 0:
        raise PlayError(f"{PLAYBOOK.relative_to(REPO)} failed (exit {done.returncode}, log {log}):\n{text[-1500:]}")
    return PlayResult(time.monotonic() - started, parse_recap(text), log)
