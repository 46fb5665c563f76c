"""hazmon_files' action plugin (plugins/action/hazmon_files.py) under a real ansible-playbook on
localhost: a file given as `template:` is rendered on the control node as the template action
renders it (ansible_managed, the host's variables, includes), and bad arguments are refused with the
file and the reason before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hazmon.rollout import ledger
from hazmon.rollout.runner import PLAIN_STRATEGY, PROJECT_ROOT

INVENTORY = "[boxes]\nbox1 ansible_connection=local ansible_python_interpreter={python} site=alpha\n"
PLAYBOOK = """
- name: Files from a role's templates
  hosts: boxes
  gather_facts: false
  roles:
    - demo
"""
TASKS = """
- name: Files
  hazmon_files:
    files:
      - path: {out}/a.conf
        template: a.conf.j2
        mode: "0640"
      - path: {out}/gone.conf
        template: missing-but-absent.j2
        state: absent
"""


def _role(tmp_path: Path, tasks: str) -> None:
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "templates").mkdir()
    (role / "tasks" / "main.yml").write_text(tasks)
    (role / "templates" / "a.conf.j2").write_text(
        "{{ ansible_managed | comment }}\nsite = {{ site }}\n{% include 'part.j2' %}\n")
    (role / "templates" / "part.j2").write_text("host = {{ inventory_hostname }}\n")


def _play(tmp_path: Path, strategy: str | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hosts.ini").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"), "ANSIBLE_CACHE_PLUGIN": "memory",
           "ANSIBLE_ROLES_PATH": str(tmp_path / "roles"), ledger.ENV_LEDGER: str(tmp_path / "ledger.jsonl")}
    env.pop("ANSIBLE_STRATEGY", None)
    if strategy:
        env["ANSIBLE_STRATEGY"] = strategy
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
                           "--diff", str(tmp_path / "play.yml")], env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("strategy", [None, PLAIN_STRATEGY], ids=["mitogen (ansible.cfg)", "plain linear"])
def test_a_template_is_rendered_on_the_control_node(tmp_path: Path, strategy: str | None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "gone.conf").write_text("old\n")
    _role(tmp_path, TASKS.format(out=out))
    first = _play(tmp_path, strategy)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    text = (out / "a.conf").read_text()
    assert text.startswith("#\n# Ansible managed") or text.startswith("# Ansible managed"), text
    assert "site = alpha\n" in text and "host = box1\n" in text, text
    assert oct((out / "a.conf").stat().st_mode & 0o777) == "0o640"
    assert not (out / "gone.conf").exists()  # absent: its (missing) template was not needed
    assert "changed=1" in first.stdout
    # Rendered the same again: nothing to do.
    again = _play(tmp_path, strategy)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]


@pytest.mark.parametrize(("entry", "message"), [
    ("template: a.conf.j2\n        content: both", "give content or template, not both"),
    ("template: nosuch.j2", "template nosuch.j2"),
])
def test_bad_entries_are_refused_before_anything_is_written(tmp_path: Path, entry: str, message: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    tasks = f"""
- name: Files
  hazmon_files:
    files:
      - path: {out}/first.conf
        content: "written only if every entry is good\\n"
      - path: {out}/b.conf
        {entry}
"""
    _role(tmp_path, tasks)
    proc = _play(tmp_path)
    assert proc.returncode == 2
    assert message in proc.stdout + proc.stderr, proc.stdout[-3000:]
    assert "files[1]" in proc.stdout + proc.stderr or "nosuch.j2" in proc.stdout + proc.stderr
    assert list(out.iterdir()) == []  # the module never ran
