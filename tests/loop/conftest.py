"""Fixtures for the loop tests: a client on a private home, an iris CSV file, a clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loop_support import T0, ManualClock

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.loop.examples import iris_frame


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Shipyard]:
    c = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    yield c
    c.close()


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "iris.csv"
    path.parent.mkdir()
    iris_frame().to_csv(path, index=False)
    return path
