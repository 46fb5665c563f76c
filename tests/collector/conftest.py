"""Fixtures for the collector's tests: a server loop thread and in-process collectors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from collector_harness import Running
from collector_sims import LoopThread

from hazmon.collector.config import CollectorConfig


@pytest.fixture
def servers() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def run_collector() -> Iterator:
    started: list[Running] = []

    def start(cfg: CollectorConfig, **kw) -> Running:
        r = Running(cfg, **kw)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.thread.is_alive():
            r.stop()
