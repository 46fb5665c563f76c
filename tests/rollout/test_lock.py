"""One rollout at a time per environment (hazmon.rollout.lock): `hazmon rollout` and a plain
ansible-playbook (the ledger callback) both refuse to start while another run holds the environment,
naming the holder; a holder that died does not block; `hazmon rollout` hands its lock down to its
ansible-playbook. Real flocks, real processes (the lock directory is the suite's own: tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazmon.rollout import ledger, lock
from hazmon.rollout.runner import PROJECT_ROOT, Runner

LAB = PROJECT_ROOT / "inventories" / "lab"
BIN = Path(sys.executable).parent
PLAY = """
- name: A gate
  hosts: all
  gather_facts: false
  vars:
    hazmon_gate: preflight
  tasks:
    - name: Something
      ansible.builtin.debug:
        msg: hello
"""


def _holder(environment: str) -> subprocess.Popen:
    """Another process holding the environment's lock (until killed), as a second operator's run would."""
    code = textwrap.dedent(f"""
        import sys, time
        from hazmon.rollout import lock
        held = lock.acquire({environment!r}, ["hazmon", "rollout", {environment!r}, "--batch", "1"])
        print("held", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def holder() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_second_hazmon_rollout_fails_at_once_naming_the_holder(holder: list[subprocess.Popen], tmp_path: Path):
    proc = _holder("lab")
    holder.append(proc)
    # Batch 99 does not exist: were the lock not taken first, this would fail for that (exit 2).
    done = subprocess.run([str(BIN / "hazmon"), "rollout", str(LAB), "--batch", "99", "--ledger",
                           str(tmp_path / "l.jsonl")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == lock.EXIT_BUSY == 75, done.stderr
    msg = done.stderr
    assert "another rollout of environment 'lab' is running" in msg
    assert f"pid {proc.pid} (" in msg and f"@{socket.gethostname()}, since 20" in msg
    assert "hazmon rollout lab --batch 1" in msg and str(lock.lock_path("lab")) in msg
    assert not (tmp_path / "l.jsonl").exists()
    # --status only reads the ledger: it works while the run goes on.
    status = subprocess.run([str(BIN / "hazmon"), "rollout", str(LAB), "--status", "--ledger",
                             str(tmp_path / "l.jsonl")], capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0, status.stderr


def test_a_holder_that_died_does_not_block(holder: list[subprocess.Popen]):
    proc = _holder("envdead")
    holder.append(proc)
    with pytest.raises(lock.EnvironmentBusy) as busy:
        lock.acquire("envdead", ["second"])
    assert busy.value.holder is not None and busy.value.holder.pid == proc.pid
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup of any kind: the lock file stays, naming it
    proc.wait()
    assert lock.read_holder(lock.lock_path("envdead")).pid == proc.pid
    with lock.acquire("envdead", ["third"]) as held:
        assert lock.read_holder(held.path).pid == os.getpid()
        assert lock.read_holder(held.path).command == "third"
    with lock.acquire("envdead", ["fourth"]):  # released on exit
        pass


def _env_with_play(tmp_path: Path, name: str) -> tuple[Path, dict[str, str]]:
    root = tmp_path / name
    root.mkdir()
    # Named hazmon.yml as Runner expects; a plain YAML inventory (the hazmon plugin passes it on).
    (root / "hazmon.yml").write_text(f"all:\n  hosts:\n    h1:\n      ansible_connection: local\n"
                                     f"      ansible_python_interpreter: {sys.executable}\n")
    (root / "play.yml").write_text(PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), "ANSIBLE_CACHE_PLUGIN": "memory",
           ledger.ENV_LEDGER: str(root / "ledger.jsonl")}
    return root, env


def test_a_plain_ansible_playbook_is_refused_while_another_run_holds_the_environment(tmp_path: Path):
    root, env = _env_with_play(tmp_path, "envplain")
    argv = [str(BIN / "ansible-playbook"), "-i", str(root / "hazmon.yml"), str(root / "play.yml")]
    with lock.acquire("envplain", ["hazmon", "rollout", "envplain", "--batch", "3"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == lock.EXIT_BUSY, done.stdout + done.stderr
        out = done.stdout + done.stderr
        assert "another rollout of environment 'envplain' is running" in out and f"pid {os.getpid()} (" in out
        assert "hazmon rollout envplain --batch 3" in out
        assert "PLAY [A gate]" not in out and not (root / "ledger.jsonl").exists()  # stopped before the first play
    # Once the holder let go, the same run goes through and takes the lock itself meanwhile.
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r.status for r in ledger.read(root / "ledger.jsonl") if r.gate == "preflight"] == ["passed"]
    assert "ansible-playbook" in lock.read_holder(lock.lock_path("envplain")).command


def test_hazmon_rollout_hands_its_lock_to_its_ansible_playbook(tmp_path: Path):
    root, _ = _env_with_play(tmp_path, "envhanded")
    with lock.acquire("envhanded", ["hazmon", "rollout", "envhanded"]) as held:
        runner = Runner(root, root / "ledger.jsonl", stream="capture", lock=held)
        assert runner.run([str(root / "play.yml")], None) == 0, runner.output[-1]
        assert [r.status for r in ledger.read(root / "ledger.jsonl") if r.gate == "preflight"] == ["passed"]
        # Still this run's after its ansible-playbook ended; a run that was not handed it is refused.
        assert lock.read_holder(held.path).pid == os.getpid()
        stranger = Runner(root, root / "ledger.jsonl", stream="capture")
        assert stranger.run([str(root / "play.yml")], None) == lock.EXIT_BUSY
        assert "another rollout of environment 'envhanded'" in stranger.output[-1]
