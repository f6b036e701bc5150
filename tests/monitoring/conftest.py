"""Fixtures for the monitoring tests: a settable clock, a log in a temp folder, moto S3."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from monitoring_support import BUCKET, CREDENTIALS, REGION, T0, ManualClock
from moto.server import ThreadedMotoServer

from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.segments import SegmentStore


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(tmp_path: Path) -> SegmentStore:
    return SegmentStore(tmp_path / "log")


@pytest.fixture
def log(store: SegmentStore, clock: ManualClock) -> Iterator[PredictionLog]:
    log = PredictionLog(store, flush_interval=0.05, clock=clock)
    yield log
    log.close()


# --- S3 through moto, as tests/store/test_artifacts.py runs it ----------------


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
def s3_store(s3_endpoint: str) -> SegmentStore:
    options = {**CREDENTIALS, "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": REGION}}
    return SegmentStore(f"s3://{BUCKET}/{uuid.uuid4().hex}", options)
