from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hazmon.testing.procs import Mosquitto, mosquitto
from tracker.helpers import Publisher
from tracker.inventory import write_inventory


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "inventory")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    with mosquitto(workdir) as b:
        yield b


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(broker)
    yield pub
    pub.close()


