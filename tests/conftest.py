"""Settings for the whole suite."""

from __future__ import annotations

import os
import tempfile


def pytest_configure() -> None:
    # Keep the inventory parse cache of test runs out of the user's ~/.cache (and shared by every
    # process the tests start, which inherit the environment).
    os.environ.setdefault("HAZMON_CACHE_DIR", tempfile.mkdtemp(prefix="hazmon-test-cache-"))
    # The suite's own rollout locks (hazmon.rollout.lock): runs of other checkouts' suites on this
    # machine, or an operator's rollout, neither block nor are blocked by the tests.
    os.environ.setdefault("HAZMON_LOCK_DIR", tempfile.mkdtemp(prefix="hazmon-test-locks-"))
