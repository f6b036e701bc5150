"""Helpers the monitoring tests import: a settable clock and record factories."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shipyard.clock import ManualClock as ManualClock  # re-exported for the suite
from shipyard.monitoring.records import PredictionBatch, PredictionRecord

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def record(
    request_id: str,
    when: datetime,
    *,
    model: str = "iris",
    version: int = 1,
    prediction: Any = 0,
    probabilities: dict[Any, float] | None = None,
    inputs: dict[str, Any] | None = None,
    row: int = 0,
) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        timestamp=when,
        model=model,
        version=version,
        inputs=inputs if inputs is not None else {"x": 1.0},
        prediction=prediction,
        probabilities=probabilities,
        latency_seconds=0.001,
        row=row,
    )


def classifier_records(
    proba: np.ndarray,
    stamps: Sequence[datetime],
    *,
    classes: Sequence[Any],
    model: str = "iris",
    version: int = 1,
    prefix: str = "r",
) -> list[PredictionRecord]:
    """One record per row of ``proba``, predicting the argmax class."""
    out = []
    for i, (p, when) in enumerate(zip(proba, stamps, strict=True)):
        out.append(
            record(
                f"{prefix}{i}",
                when,
                model=model,
                version=version,
                prediction=classes[int(np.argmax(p))],
                probabilities={c: float(v) for c, v in zip(classes, p, strict=True)},
                inputs={"x": float(i)},
            )
        )
    return out


def batch_job_rows(job: str, n: int) -> PredictionBatch:
    """``n`` rows of one batch job (``source="batch"``) for iris:1, logged at T0."""
    import pandas as pd

    return PredictionBatch(
        request_id=job,
        timestamp=T0,
        model="iris",
        version=1,
        inputs=pd.DataFrame({"x": np.arange(n, dtype=float)}),
        predictions=np.zeros(n, dtype=int),
        source="batch",
    )
