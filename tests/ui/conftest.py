"""A seeded store and the UI over it, served on 127.0.0.1 for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_seed import PASSWORD, seed

from live_server import LiveServer
from shipyard._client import Shipyard
from shipyard.config import Settings
from shipyard.ui.app import create_app
from shipyard.ui.auth import Users, hash_password


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> Iterator[tuple[Shipyard, dict[str, object]]]:
    client = Shipyard(Settings(home=tmp_path / "home", db=database_url, user="seed"))
    facts = seed(client)
    yield client, facts
    client.close()


@pytest.fixture
def ui_server(seeded: tuple[Shipyard, dict[str, object]]) -> Iterator[LiveServer]:
    client, _ = seeded
    users = Users({"ann": hash_password(PASSWORD)}, admin_token=None)
    server = LiveServer(create_app(client, users=users)).start(ready=False)
    yield server
    server.stop()
