# Mitogen's linear strategy, found through ansible.cfg's strategy_plugins (plugins/strategy)
# instead of a path into the virtualenv's site-packages, which names the Python version.
# Mitogen keeps one Python interpreter per host for the whole run and sends modules to it, instead
# of one SSH exec and one interpreter start per task: where a re-run of a batch spends its time.
# Falling back: ANSIBLE_STRATEGY=linear, or `hazmon rollout --plain-strategy`.
from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: Ansible's linear strategy over Mitogen connections
description:
  - Mitogen's own mitogen_linear strategy (the ansible_mitogen package, a pinned dependency of hazmon),
    exposed under plugins/strategy.
"""

import ansible_mitogen.loaders  # noqa: E402
import ansible_mitogen.strategy  # noqa: E402

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    pass
