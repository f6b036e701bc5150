"""Fixtures for the monitoring tests: a settable clock, a log in a temp folder or on S3
(moto's server, shared by the suite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from monitoring_support import T0, ManualClock

from services import s3_options
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


@pytest.fixture
def s3_store(s3_endpoint: str, s3_bucket: str) -> SegmentStore:
    """A log on moto's S3 server (the suite's, shared), in a bucket of this test's own."""
    return SegmentStore(f"s3://{s3_bucket}/log", s3_options(s3_endpoint))
