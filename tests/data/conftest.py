"""Fixtures for data versions: a client on SQLite + a local folder, and on PostgreSQL + S3
(moto's server, as tests/store/test_artifacts.py runs it)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from shipyard import Shipyard
from shipyard.config import Settings

BUCKET = "shipyard-data"
CREDENTIALS = {"key": "testing", "secret": "testing"}
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=CREDENTIALS["key"],
            aws_secret_access_key=CREDENTIALS["secret"],
            region_name=REGION,
        ).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Credentials come from the standard AWS chain, as in production.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture(params=["sqlite+local", "postgres+s3"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shipyard]:
    """A client on each back end pair the data commands must work on."""
    if request.param == "sqlite+local":
        settings = Settings(home=tmp_path / "home", user="tester")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        request.getfixturevalue("aws_env")
        settings = Settings(
            home=tmp_path / "home",
            user="tester",
            db=request.getfixturevalue("postgres_url"),
            artifacts=f"s3://{BUCKET}/{uuid.uuid4().hex}",
            s3_endpoint_url=endpoint,
        )
    c = Shipyard(settings)
    yield c
    c.close()
