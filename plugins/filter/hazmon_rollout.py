# hazmon_rollout_serial: the rollout play's `serial` (host counts) cut on enterprise boundaries, for
# the devices that came through preflight, in the same ansible-playbook run. Ansible's `serial`
# counts hosts, an enterprise has several of different kinds, and which enterprises remain is only
# known after preflight: so preflight's last task computes the waves, and the rollout play reads
# them (playbooks/preflight.yml, playbooks/rollout.yml). The arithmetic is hazmon.rollout.runner's
# (one place, also used for `hazmon rollout`'s summary).
from __future__ import annotations

from collections.abc import Sequence

from ansible.errors import AnsibleFilterError


def hazmon_rollout_serial(enterprises: Sequence[str], waves: Sequence[str | int] | None = None) -> list[int]:
    """`enterprises`: each host's enterprise, hosts in the play's order (`order: sorted`, host names
    start with the enterprise's slug, so an enterprise's hosts are adjacent)."""
    try:
        from hazmon.rollout.runner import DEFAULT_WAVES, RolloutError, serial_for
    except ImportError as exc:
        raise AnsibleFilterError(f"hazmon is not importable by ansible-playbook's Python: {exc}") from exc
    hosts: dict[str, list[int]] = {}
    order: list[str] = []
    for index, enterprise in enumerate(enterprises):
        if enterprise not in hosts:
            order.append(enterprise)
            hosts[enterprise] = []
        elif hosts[enterprise][-1] != index - 1:
            raise AnsibleFilterError(f"hazmon_rollout_serial: the hosts of {enterprise} are not adjacent; "
                                     "sort the hosts by name first (an enterprise's hosts start with its slug)")
        hosts[enterprise].append(index)
    try:
        return serial_for(order, hosts, [str(w) for w in (waves or DEFAULT_WAVES)])
    except (RolloutError, ValueError) as exc:
        raise AnsibleFilterError(f"hazmon_rollout_serial: waves {list(waves or DEFAULT_WAVES)}: {exc}") from exc


class FilterModule:
    def filters(self) -> dict:
        return {"hazmon_rollout_serial": hazmon_rollout_serial}
