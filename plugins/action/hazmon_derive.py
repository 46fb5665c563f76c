# hazmon_derive: what the roles need of the inventory model for a play batch's gateways and AI
# boxes, derived inside ansible-playbook itself (an action plugin runs on the control node, in a
# fork of the process whose inventory plugin has already imported hazmon): no Python start and no
# model import per call, about 0.1 s instead of 1-2 s per wave. The logic is
# hazmon.rollout.gateway.derive_many (tested there); the module file of the same name documents it.
from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_SPEC = {
    "hosts": {"type": "list", "elements": "str", "required": True},
    "inventory": {"type": "path", "required": True},
    "management_prefix": {"type": "int", "default": 16},
    # Unset: hazmon.rollout.gateway's defaults (one place).
    "metrics_port": {"type": "int"},
    "secrets_dir": {"type": "path"},
    "collector": {"type": "bool", "default": True},
    "clock_sync_wait": {"type": "float"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(_SPEC)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=_SPEC)
        try:
            from hazmon.inventory.findings import InventoryError
            from hazmon.inventory.validate import load_valid
            from hazmon.rollout.gateway import derive_many
        except ImportError as exc:
            raise AnsibleActionFail(f"hazmon is not importable by ansible-playbook's Python: {exc}") from exc
        try:
            inv, _ = load_valid(Path(args["inventory"]))
        except InventoryError as exc:
            raise AnsibleActionFail(f"hazmon inventory {args['inventory']}: {exc}") from exc
        result["changed"] = False
        given = {k: v for k, v in (("metrics_port", args["metrics_port"]), ("secrets_dir", args["secrets_dir"]))
                 if v is not None}
        if "secrets_dir" in given:
            given["secrets_dir"] = Path(given["secrets_dir"])
        result["hosts"] = derive_many(inv, args["hosts"], management_prefix=args["management_prefix"],
                                      collector=args["collector"], clock_sync_wait=args["clock_sync_wait"],
                                      **given)
        return result
