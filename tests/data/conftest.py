"""Fixtures for data versions: a client on SQLite + a local folder, and on PostgreSQL + S3
(moto's server, shared by the suite; a bucket per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard import Shipyard
from shipyard.config import Settings


@pytest.fixture(params=["sqlite+local", "postgres+s3"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shipyard]:
    """A client on each back end pair the data commands must work on."""
    if request.param == "sqlite+local":
        settings = Settings(home=tmp_path / "home", user="tester")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        request.getfixturevalue("aws_env")  # credentials from the standard AWS chain
        settings = Settings(
            home=tmp_path / "home",
            user="tester",
            db=request.getfixturevalue("postgres_url"),
            artifacts=f"s3://{bucket}/artifacts",
            s3_endpoint_url=endpoint,
        )
    c = Shipyard(settings)
    yield c
    c.close()
