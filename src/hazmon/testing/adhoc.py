"""One Ansible module run through the `ansible` ad-hoc command, as a play runs it (the project's
ansible.cfg, its modules and connection settings): for tests of the project's modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hazmon.rollout.runner import PROJECT_ROOT


def ansible_adhoc(pattern: str, module: str, args: str, *extra: str, inventory: str | Path = "localhost,",
                  timeout: float = 180) -> dict:
    """The module's JSON result, with `failed` taken from the status word (`host | FAILED! => {...}`):
    ansible-core 2.19's ad-hoc "minimal" output says it only there."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "-i", str(inventory), pattern, "-m", module, "-a", args, *extra],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=PROJECT_ROOT, check=False,
    )
    head, sep, body = res.stdout.partition(" => ")
    if not sep:
        raise AssertionError(f"no result from ansible:\n{res.stdout}\n{res.stderr}")
    result = json.loads(body)
    result["failed"] = head.rsplit("|", 1)[-1].strip().startswith("FAILED")
    return result
