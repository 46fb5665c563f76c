# hazmon rollout ledger: a thin shell; the record format is hazmon.rollout.ledger (tested there).
from __future__ import annotations

DOCUMENTATION = r"""
name: hazmon_ledger
type: aggregate
short_description: records every enterprise's progress through the rollout's gates in hazmon's ledger
description:
  - For each play that sets the variable C(hazmon_gate) (preflight, rollout, verify, province,
    decommission), appends to the ledger one record per host that failed or was unreachable (the task
    and the reason) and one C(passed) record per host that came through the play; at the end, each
    host's recap (ok, changed, failed counts).
  - A block or task may set its own C(hazmon_gate) inside such a play (as the rollout play's per-wave
    verify gates do), and its results count for that gate. A host passes each gate it reached and did
    not fail; passed records are written at the end of each play batch (wave).
  - When the rollout's wave verdict (action C(hazmon_wave_verdict)) stops the run, a C(stopped) record
    with its reason (not a failure of the host the verdict ran for).
  - One run at a time per environment (C(hazmon.rollout.lock)). At the start of a playbook, takes the
    environment's lock, or adopts the one C(hazmon rollout) handed down. When another run holds it,
    ansible-playbook stops at once (exit 75) with a message naming the holder.
  - Hosts are tied to their enterprise and batch through the inventory's groups (enterprise_<slug>,
    batch_<n>) as the hazmon inventory plugin makes them.
  - The ledger is C($HAZMON_LEDGER), else /var/lib/hazmon/ledger/<inventory>.jsonl; the run id is
    C($HAZMON_RUN_ID) when C(hazmon rollout) sets it (several playbooks, one run).
  - Reasons of tasks with C(no_log) are never written, only the task's name.
requirements:
  - the hazmon package importable by the Python running Ansible
"""

import os  # noqa: E402
import sys  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible import context  # noqa: E402

try:
    from hazmon.rollout import ledger, lock
except ImportError:  # pragma: no cover - reported when the callback is enabled
    ledger = lock = None  # type: ignore[assignment]

VERDICT_ACTIONS = ("hazmon_wave_verdict",)  # plugins/action: it fails to stop the run after a wave


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "hazmon_ledger"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._run = os.environ.get("HAZMON_RUN_ID") or (ledger.new_run_id() if ledger else "")
        self._path = None
        self._lock = None  # the environment's lock, held until ansible-playbook exits
        self._gate: str | None = None  # the play's
        # In the current play batch: host name -> (Host, the gates it reached, in order), and the
        # gate each failed host failed at.
        self._seen: dict[str, tuple[object, list[str]]] = {}
        self._failed: dict[str, str] = {}
        self._hosts: dict[str, object] = {}  # every host seen in the run (for the recap)
        self._check = bool(context.CLIARGS.get("check", False))

    # ------------------------------------------------------------ where and who

    @staticmethod
    def _environment() -> str:
        return lock.environment_name(next(iter(context.CLIARGS.get("inventory") or ["hazmon"])))

    def _ledger(self):
        if self._path is None:
            self._path = ledger.ledger_path(self._environment())
        return self._path

    @staticmethod
    def _whose(host) -> dict[str, object]:
        out: dict[str, object] = {}
        for group in host.get_groups():
            if group.name.startswith("enterprise_"):
                out["slug"] = group.name[len("enterprise_"):]
                out["enterprise"] = group.get_vars().get("hazmon_enterprise")
            elif group.name.startswith("batch_") and group.name[6:].isdigit():
                out["batch"] = int(group.name[6:])
        return out

    def _record(self, host, status: str, task: str | None = None, reason: str | None = None,
                counts: dict[str, int] | None = None, gate: str | None = None) -> None:
        if ledger is None:
            return
        rec = ledger.Record(run=self._run, gate=gate or self._gate or "", status=status, host=host.name,
                            task=task, reason=ledger.clip(reason) if reason else None, check=self._check,
                            counts=counts or {}, **self._whose(host))
        ledger.append(self._ledger(), [rec])

    @staticmethod
    def _reason(result) -> str:
        res = result._result
        if result._task.no_log or res.get("_ansible_no_log"):
            return "the task's output is hidden (no_log); see its name"
        for key in ("msg", "reason", "stderr", "module_stderr"):
            if res.get(key):
                return str(res[key])
        for item in res.get("results") or []:
            if isinstance(item, dict) and item.get("failed") and item.get("msg"):
                return str(item["msg"])
        return "failed"

    # ------------------------------------------------------------ the run

    def v2_playbook_on_start(self, playbook) -> None:
        if lock is None or self._lock is not None:
            return
        try:
            self._lock = lock.adopt_or_acquire(self._environment(), sys.argv)
        except lock.EnvironmentBusy as exc:
            self._display.error(str(exc))
            # A callback's exceptions are only warnings to Ansible: exit before the first play.
            raise SystemExit(lock.EXIT_BUSY) from None

    # ------------------------------------------------------------ plays

    def _close_play(self) -> None:
        """A play batch (a wave) ends: each host passed the gates it reached and did not fail."""
        for name, (host, gates) in self._seen.items():
            for gate in gates:
                if self._failed.get(name) == gate:
                    break
                self._record(host, ledger.Status.PASSED, gate=gate)
        self._gate, self._seen, self._failed = None, {}, {}

    def v2_playbook_on_play_start(self, play) -> None:
        self._close_play()
        gate = play.get_vars().get("hazmon_gate")
        self._gate = str(gate) if gate else None

    def _gate_of(self, result) -> str | None:
        """The task's own gate (a block of the play may set hazmon_gate), else the play's."""
        if self._gate is None:
            return None
        gate = result._task.get_vars().get("hazmon_gate")
        return str(gate) if gate else self._gate

    def _note(self, result) -> str | None:
        host = result._host
        gate = self._gate_of(result)
        _, gates = self._seen.setdefault(host.name, (host, []))
        if gate is not None and gate not in gates and host.name not in self._failed:
            gates.append(gate)
        self._hosts.setdefault(host.name, host)
        return gate

    def v2_runner_on_ok(self, result) -> None:
        self._note(result)

    def v2_runner_on_skipped(self, result) -> None:
        self._note(result)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        gate = self._note(result)
        if ignore_errors or gate is None:
            return
        res = result._result
        if result._task.action in VERDICT_ACTIONS and res.get("stop"):
            # The run stops after this wave: the run's record, the host it ran for did not fail.
            self._record_run(ledger.Status.STOPPED, gate, result._task.get_name(), str(res.get("msg", "")))
            return
        if result._host.name not in self._failed:
            self._failed[result._host.name] = gate
            self._record(result._host, ledger.Status.FAILED, result._task.get_name(), self._reason(result),
                         gate=gate)

    def v2_runner_on_unreachable(self, result) -> None:
        gate = self._note(result)
        if gate is None:
            return
        if result._host.name not in self._failed:
            self._failed[result._host.name] = gate
            self._record(result._host, ledger.Status.UNREACHABLE, result._task.get_name(), self._reason(result),
                         gate=gate)

    def _record_run(self, status: str, gate: str, task: str, reason: str) -> None:
        """A record of the run itself (no host's enterprise: progress is not moved by it)."""
        rec = ledger.Record(run=self._run, gate=gate, status=status, host="run", task=task,
                            reason=ledger.clip(reason), check=self._check)
        ledger.append(self._ledger(), [rec])

    def v2_playbook_on_stats(self, stats) -> None:
        self._close_play()
        for name, host in self._hosts.items():
            s = stats.summarize(name)
            self._record(host, ledger.Status.SUMMARY, counts={k: int(v) for k, v in s.items()}, gate="run")
