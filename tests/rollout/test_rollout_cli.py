"""`hazmon rollout`: refusals before anything runs, and the ansible-playbook command it builds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from hazmon.rollout.ledger import ENV_LEDGER, ENV_RUN
from hazmon.rollout.runner import ANSIBLE_DEFAULTS_ENV, PROJECT_ROOT, Runner

LAB = PROJECT_ROOT / "inventories" / "lab"
HAZMON = str(Path(sys.executable).parent / "hazmon")


def hazmon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HAZMON, *args], capture_output=True, text=True, timeout=120, check=False)


def test_an_unknown_batch_is_refused_and_nothing_runs(tmp_path: Path):
    ledger = tmp_path / "ledger.jsonl"
    proc = hazmon("rollout", str(LAB), "--batch", "99", "--ledger", str(ledger))
    assert proc.returncode == 2
    assert "batch 99" in proc.stderr and "batches: [1, 2]" in proc.stderr
    assert not ledger.exists()


def test_a_max_fail_percentage_outside_0_to_100_is_refused_before_anything_runs(tmp_path: Path):
    ledger = tmp_path / "ledger.jsonl"
    proc = hazmon("rollout", str(LAB), "--batch", "1", "--max-fail-percentage", "150", "--ledger", str(ledger))
    assert proc.returncode == 2 and "--max-fail-percentage 150: give 0 to 100" in proc.stderr, proc.stderr
    assert not ledger.exists()


def test_an_invalid_inventory_is_refused_naming_file_line_and_rule(tmp_path: Path):
    inv = tmp_path / "lab"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns(".cache"))
    ent = inv / "cities" / "5101-chengdu" / "enterprises" / "labe0001-chem.yml"
    text = ent.read_text(encoding="utf-8")
    ent.write_text(text.replace("contracted_mbps: 20,", "contracted_mbps: 10,", 1), encoding="utf-8")
    ledger = tmp_path / "ledger.jsonl"
    proc = hazmon("rollout", str(inv), "--batch", "1", "--ledger", str(ledger))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "labe0001-chem.yml:7: error N2 [line.contracted_mbps]" in proc.stderr
    assert not ledger.exists()  # not even preflight ran


def test_the_command_line_and_environment_of_a_run(tmp_path: Path):
    runner = Runner(LAB, tmp_path / "l.jsonl", run_id="r-1", verbosity=3)
    argv = runner.argv(["preflight.yml"], "enterprise_labe0001:role_province_broker", {"rollout_serial": [5]})
    assert argv[1:3] == ["-i", str(LAB / "hazmon.yml")]
    assert "--limit" in argv and argv[argv.index("--limit") + 1] == "enterprise_labe0001:role_province_broker"
    assert argv[-2] == "-vvv" and argv[-1] == str(PROJECT_ROOT / "playbooks" / "preflight.yml")
    env = runner.env()
    assert env[ENV_LEDGER] == str(tmp_path / "l.jsonl") and env[ENV_RUN] == "r-1"
    assert env["ANSIBLE_CONFIG"] == str(PROJECT_ROOT / "ansible.cfg")
    assert not set(ANSIBLE_DEFAULTS_ENV) & set(env) - set(__import__("os").environ)


def test_plain_strategy_replaces_mitogen(tmp_path: Path):
    tuned = Runner(LAB, tmp_path / "l.jsonl").env()
    assert tuned.get("ANSIBLE_STRATEGY") == __import__("os").environ.get("ANSIBLE_STRATEGY")  # ansible.cfg's
    env = Runner(LAB, tmp_path / "l.jsonl", plain_strategy=True).env()
    assert env["ANSIBLE_STRATEGY"] == "linear"
    # ansible.cfg's strategy is Mitogen's, found in the project's plugins/strategy.
    cfg = (PROJECT_ROOT / "ansible.cfg").read_text()
    assert "\nstrategy = mitogen_linear\n" in cfg and "\nstrategy_plugins = plugins/strategy\n" in cfg


def test_ansible_defaults_mode_undoes_the_tuning(tmp_path: Path):
    runner = Runner(LAB, tmp_path / "l.jsonl", ansible_defaults=True)
    env = runner.env()
    assert env["ANSIBLE_PIPELINING"] == "False" and env["ANSIBLE_FORKS"] == "5"
    assert env["ANSIBLE_STRATEGY"] == "linear"  # no Mitogen
    assert env["ANSIBLE_CACHE_PLUGIN"] == "memory"
    argv = runner.argv(["rollout.yml"], None)
    assert '"rollout_gather_subset": "all"' in argv[argv.index("-e") + 1]


# ------------------------------------------------------------------ a torn ledger (the control node died mid-write)


def _verified(ledger_path: Path, code: str, hosts: list[str]) -> None:
    from hazmon.rollout import ledger

    ledger.append(ledger_path, [ledger.Record(run="r1", gate=g, status="passed", host=h, enterprise=code,
                                              slug="labe0001", batch=1)
                                for g in ("preflight", "rollout", "verify") for h in hosts])
    with open(ledger_path, "a", encoding="utf-8") as fh:
        fh.write('{"run": "r1", "gate": "verify", "status": "pa')  # the last append, cut short


def test_status_reports_a_torn_last_line_and_goes_on(tmp_path: Path):
    path = tmp_path / "ledger.jsonl"
    _verified(path, "91510100MALABE0001", ["labe0001-agw", "labe0001-daq"])
    proc = hazmon("rollout", str(LAB), "--status", "--ledger", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "91510100MALABE0001  labe0001  verified" in proc.stdout
    lines = path.read_text().count("\n")
    assert f"warning: {path}:{lines + 1}: skipped: the last line is cut short" in proc.stderr


def test_a_resumed_rollout_reads_past_a_torn_last_line(tmp_path: Path):
    """run_batch with a runner that runs nothing (a stub: what matters is what it reads first)."""
    from hazmon.inventory.validate import load_valid
    from hazmon.rollout.batch import run_batch
    from hazmon.rollout.runner import enterprise_hosts

    class NoAnsible(Runner):
        def run(self, playbooks, limit, extra_vars=None, check=False) -> int:  # type: ignore[override]
            self.output.append(f"{playbooks} {limit}")
            return 0

    inv, readiness = load_valid(LAB)
    hosts = enterprise_hosts(inv, readiness)
    code = next(e.code for e in inv.enterprises if e.slug == "labe0001")
    path = tmp_path / "ledger.jsonl"
    _verified(path, code, hosts[code])
    runner = NoAnsible(LAB, path, stream="capture")
    result = run_batch(LAB, 1, runner)
    assert result.skipped_done == [code]  # it continued where the ledger says, torn line or not
    assert "enterprise_labe0001" not in runner.output[0] and "enterprise_labe0002" in runner.output[0]
    assert len(result.ledger_skipped) == 1 and "cut short" in result.ledger_skipped[0]
