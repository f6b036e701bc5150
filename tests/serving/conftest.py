"""Fixtures for the serving tests (helpers live in serving_helpers.py).

Registering models is the slow part (training, skops, environment capture),
so it happens once per session into a template folder; each test that moves
aliases gets its own copy of that folder (milliseconds), read-only tests share
one copy and one server per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_helpers import IrisRegistry, LiveServer, copy_registry, register_models, serve

from shipyard.config import Settings


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serving-template") / "home"
    register_models(Settings(home=home, user="tester"))
    return home


@pytest.fixture
def iris(registry_template: Path, tmp_path: Path) -> Iterator[IrisRegistry]:
    """A private copy of the registry: free to move its aliases."""
    registry = copy_registry(registry_template, tmp_path / "home")
    yield registry
    registry.client.close()


@pytest.fixture(scope="session")
def shared_iris(
    registry_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisRegistry]:
    """One copy shared by read-only tests (nobody moves its aliases)."""
    registry = copy_registry(registry_template, tmp_path_factory.mktemp("shared") / "home")
    yield registry
    registry.client.close()


@pytest.fixture
def live(iris: IrisRegistry) -> Iterator[LiveServer]:
    """A server for ``iris`` (its production alias) on a private registry."""
    server = serve(iris.client)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_live(shared_iris: IrisRegistry) -> Iterator[LiveServer]:
    """One server for a module of read-only tests."""
    server = serve(shared_iris.client)
    yield server
    server.stop()
