"""The rollout's Python side: what the playbooks and roles ask the control node to do.

Among its modules: `wheelhouse` builds the collector's offline wheelhouse; `gateway` derives a
gateway's collector config, secret files and firewall flows from the inventory model (lean hostvars:
the model stays on the control node).
"""
