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
  - Hosts are tied to their enterprise and batch through the inventory's groups (enterprise_<slug>,
    batch_<n>) as the hazmon inventory plugin makes them.
  - The ledger is C($HAZMON_LEDGER), else /var/lib/hazmon/ledger/<inventory>.jsonl; the run id is
    C($HAZMON_RUN_ID) when C(hazmon rollout) sets it (several playbooks, one run).
  - Reasons of tasks with C(no_log) are never written, only the task's name.
requirements:
  - the hazmon package importable by the Python running Ansible
"""

import os  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible import context  # noqa: E402

try:
    from hazmon.rollout import ledger
except ImportError:  # pragma: no cover - reported when the callback is enabled
    ledger = None  # type: ignore[assignment]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "hazmon_ledger"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._run = os.environ.get("HAZMON_RUN_ID") or (ledger.new_run_id() if ledger else "")
        self._path = None
        self._gate: str | None = None
        self._seen: dict[str, object] = {}  # host name -> Host, in the current play
        self._failed: set[str] = set()
        self._hosts: dict[str, object] = {}  # every host seen in the run (for the recap)
        self._check = bool(context.CLIARGS.get("check", False))

    # ------------------------------------------------------------ where and who

    def _ledger(self):
        if self._path is None:
            inv = next(iter(context.CLIARGS.get("inventory") or ["hazmon"]))
            name = os.path.basename(os.path.dirname(os.path.abspath(inv))) or "hazmon"
            self._path = ledger.ledger_path(name)
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

    # ------------------------------------------------------------ plays

    def _close_play(self) -> None:
        if self._gate is not None:
            for name, host in self._seen.items():
                if name not in self._failed:
                    self._record(host, ledger.Status.PASSED)
        self._gate, self._seen, self._failed = None, {}, set()

    def v2_playbook_on_play_start(self, play) -> None:
        self._close_play()
        gate = play.get_vars().get("hazmon_gate")
        self._gate = str(gate) if gate else None

    def _note(self, result) -> None:
        host = result._host
        self._seen.setdefault(host.name, host)
        self._hosts.setdefault(host.name, host)

    def v2_runner_on_ok(self, result) -> None:
        self._note(result)

    def v2_runner_on_skipped(self, result) -> None:
        self._note(result)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        self._note(result)
        if ignore_errors or self._gate is None:
            return
        if result._host.name not in self._failed:
            self._failed.add(result._host.name)
            self._record(result._host, ledger.Status.FAILED, result._task.get_name(), self._reason(result))

    def v2_runner_on_unreachable(self, result) -> None:
        self._note(result)
        if self._gate is None:
            return
        if result._host.name not in self._failed:
            self._failed.add(result._host.name)
            self._record(result._host, ledger.Status.UNREACHABLE, result._task.get_name(), self._reason(result))

    def v2_playbook_on_stats(self, stats) -> None:
        self._close_play()
        for name, host in self._hosts.items():
            s = stats.summarize(name)
            self._record(host, ledger.Status.SUMMARY, counts={k: int(v) for k, v in s.items()}, gate="run")
