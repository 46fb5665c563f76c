# hazmon_wave_verdict: at the end of each wave of the rollout play, whether the run goes on. It runs
# on the control node (run_once): it reads each of the wave's hosts' enterprise and device kind from
# hostvars and hands them to hazmon.rollout.verdict (the rule and its reasons are there, tested
# there). On `stop` it fails, and the task's any_errors_fatal ends the run; the ledger callback
# records that as the run's stop, with the reason, not as a failure of the host it ran for.
# The module file of the same name documents it.
from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_SPEC = {
    "hosts": {"type": "list", "elements": "str", "required": True},
    "active": {"type": "list", "elements": "str", "required": True},
    "canary": {"type": "bool", "required": True},
    "later_waves": {"type": "bool", "required": True},
    "max_fail_percentage": {"type": "float", "default": 50},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(_SPEC)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=_SPEC)
        try:
            from hazmon.rollout.verdict import WaveHost, verdict
        except ImportError as exc:
            raise AnsibleActionFail(f"hazmon is not importable by ansible-playbook's Python: {exc}") from exc
        hostvars = (task_vars or {}).get("hostvars", {})
        hosts = []
        for name in args["hosts"]:
            hv = hostvars.get(name, {})
            # The slug (labe0001) reads better than the unified code in a message; either names the enterprise.
            ent = hv.get("hazmon_slug") or hv.get("hazmon_enterprise") or name
            hosts.append(WaveHost(name, str(ent), str(hv.get("hazmon_role", "?"))))
        try:
            out = verdict(hosts, args["active"], canary=args["canary"], later_waves=args["later_waves"],
                          max_fail_percentage=args["max_fail_percentage"])
        except ValueError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        result.update(out.as_dict())
        result["changed"] = False
        result["failed"] = out.stop
        return result
