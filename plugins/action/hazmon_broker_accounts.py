# hazmon_broker_accounts: the province broker's accounts from the hazmon inventory model, derived
# inside ansible-playbook (an action plugin runs on the control node, in a fork of the process whose
# inventory plugin has already imported hazmon): no Python start and no model import per run, about
# a second less for every province play. The logic is hazmon.broker.broker_accounts (tested there);
# the module file of the same name documents it.
from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_SPEC = {"inventory": {"type": "path", "required": True}}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(_SPEC)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=_SPEC)
        try:
            from hazmon.broker import MAX_PACKET_BYTES, broker_accounts
            from hazmon.inventory.findings import InventoryError
            from hazmon.inventory.validate import load_valid
        except ImportError as exc:
            raise AnsibleActionFail(f"hazmon is not importable by ansible-playbook's Python: {exc}") from exc
        try:
            inv, _ = load_valid(Path(args["inventory"]))
        except InventoryError as exc:
            raise AnsibleActionFail(f"hazmon inventory {args['inventory']} is invalid: {exc}") from exc
        result.update(changed=False, accounts=[a.as_dict() for a in broker_accounts(inv)],
                      max_packet_size=MAX_PACKET_BYTES)
        return result
