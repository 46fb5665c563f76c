# hazmon_collector_health: the collector role's last check. On the control node, it reads the
# collector's /metrics where the province's Prometheus does, until the collector is connected to the
# broker and queueing, within `timeout` (hazmon.rollout.health: the rule, tested there); when it is
# not, the host fails with what the metrics said and the tail of the unit's journal, read from the
# gateway. The module file of the same name documents it.
from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_SPEC = {
    "url": {"type": "str", "required": True},
    "timeout": {"type": "float", "default": 60},
    "unit": {"type": "str", "default": "hazmon-collector"},
    "journal_lines": {"type": "int", "default": 30},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(_SPEC)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=_SPEC)
        result["changed"] = False
        if self._task.check_mode:
            result["skipped"] = True
            result["msg"] = "check mode: the collector was not (re)started, nothing to check"
            return result
        try:
            from hazmon.rollout.health import wait_healthy
        except ImportError as exc:
            raise AnsibleActionFail(f"hazmon is not importable by ansible-playbook's Python: {exc}") from exc
        health = wait_healthy(args["url"], args["timeout"])
        result["seconds"] = round(health.seconds, 1)
        if health.ok:
            result["msg"] = health.msg
            return result
        journal = self._execute_module(
            module_name="ansible.builtin.command",
            module_args={"argv": ["journalctl", "--unit", args["unit"], "--lines", str(args["journal_lines"]),
                                  "--no-pager", "--output", "short-iso"]},
            task_vars=task_vars)
        tail = journal.get("stdout") or journal.get("msg") or "(empty)"
        result["failed"] = True
        result["journal"] = tail.splitlines()
        result["msg"] = f"{health.msg}. The last {args['journal_lines']} lines of its journal:\n{tail}"
        return result
