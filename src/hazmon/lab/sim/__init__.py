"""The lab's field-device simulators: one standalone program per device kind.

Each runs as `python -m hazmon.lab.sim.<name>` with the common options of `common.common_parser`,
inside its enterprise's network namespace in the lab, on 127.0.0.1 in tests.
"""
