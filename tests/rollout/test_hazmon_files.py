"""plugins/modules/hazmon_files.py, run as Ansible runs it (arguments in, JSON out) on local files."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import stat
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

MODULE = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "hazmon_files.py"
# The module sets owner root as the role asks; `make test` runs as root (README), checked in each test.


@pytest.fixture(autouse=True)
def _as_root() -> None:
    assert os.geteuid() == 0, "run the tests as root (README): the module sets files' owner to root"


def run(args: dict, check: bool = False, diff: bool = False) -> dict:
    spec = importlib.util.spec_from_file_location("hazmon_files", MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": diff}}
    basic._ANSIBLE_ARGS = to_bytes(json.dumps(payload))
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        mod.main()
    return json.loads(out.getvalue())


def test_create_then_nothing_to_do(tmp_path: Path) -> None:
    args = {"directories": [{"path": str(tmp_path / "d"), "mode": "0750"}],
            "files": [{"path": str(tmp_path / "d" / "a.conf"), "content": "a = 1\n", "mode": "0600"}]}
    first = run(args)
    assert first["changed"] and first["changed_paths"] == [str(tmp_path / "d"), str(tmp_path / "d" / "a.conf")]
    assert (tmp_path / "d" / "a.conf").read_text() == "a = 1\n"
    assert stat.S_IMODE((tmp_path / "d" / "a.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    again = run(args)
    assert again["changed"] is False and again["changed_paths"] == []


def test_check_mode_reports_and_leaves_the_file(tmp_path: Path) -> None:
    f = tmp_path / "b.conf"
    f.write_text("edited by hand\n")
    res = run({"files": [{"path": str(f), "content": "managed\n"}]}, check=True, diff=True)
    assert res["changed"] and res["changed_paths"] == [str(f)]
    assert res["diff"] == [{"before_header": str(f), "after_header": str(f),
                            "before": "edited by hand\n", "after": "managed\n"}]
    assert f.read_text() == "edited by hand\n"


def test_attributes_only(tmp_path: Path) -> None:
    f = tmp_path / "c.conf"
    f.write_text("x\n")
    f.chmod(0o666)
    res = run({"files": [{"path": str(f), "content": "x\n", "mode": "0644"}]}, diff=True)
    assert res["changed"] and "(attributes)" in res["diff"][0]["before_header"]
    assert stat.S_IMODE(f.stat().st_mode) == 0o644


def test_validation_failure_leaves_the_old_file(tmp_path: Path) -> None:
    f = tmp_path / "d.conf"
    f.write_text("good\n")
    res = run({"files": [{"path": str(f), "content": "bad\n", "validate": "/bin/grep -q good %s"}]})
    assert res.get("failed") and "validation failed" in res["msg"]
    assert f.read_text() == "good\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.conf"]  # no temporary file left
    ok = run({"files": [{"path": str(f), "content": "good too\n", "validate": "/bin/grep -q good %s"}]})
    assert ok["changed"] and f.read_text() == "good too\n"


def test_absent_and_secret_diff(tmp_path: Path) -> None:
    gone, secret = tmp_path / "gone.list", tmp_path / "s.password"
    gone.write_text("deb http://deb.debian.org/debian bookworm main\n")
    res = run({"files": [{"path": str(secret), "content": "hunter2", "mode": "0600", "diff": False}],
               "absent": [str(gone), str(tmp_path / "never-there")]}, diff=True)
    assert res["changed_paths"] == [str(secret), str(gone)] and not gone.exists()
    # diff: false keeps a secret out of what the module reports (its invocation echo is the task's
    # no_log's business, as for any module).
    assert "hunter2" not in json.dumps({k: v for k, v in res.items() if k != "invocation"})


def test_missing_directory_and_wrong_owner(tmp_path: Path) -> None:
    res = run({"files": [{"path": str(tmp_path / "no" / "x"), "content": "x"}]})
    assert res.get("failed") and "does not exist" in res["msg"]
    res = run({"files": [{"path": str(tmp_path / "y"), "content": "y", "owner": "no-such-user-hz"}]})
    assert res.get("failed") and "unknown owner" in res["msg"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
