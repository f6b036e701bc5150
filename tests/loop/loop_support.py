"""Helpers the loop tests import: a settable clock, a recording canary, config builders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.clock import ManualClock as ManualClock  # re-exported for the suite
from shipyard.loop.canary import CanaryOutcome, CanaryRequest
from shipyard.loop.config import LoopConfig
from shipyard.loop.examples import iris_frame

T0 = datetime(2026, 3, 2, 3, 0, 30, tzinfo=UTC)  # 30 s after a "0 3 * * *" schedule


class RecordingCanary:
    """A canary runner at the loop's interface boundary: records calls, returns set outcomes.

    ``outcomes`` are returned by successive ``poll`` calls (None: still running).
    """

    def __init__(self, *outcomes: CanaryOutcome | None, unserved: str | None = None) -> None:
        self.outcomes = list(outcomes) or [CanaryOutcome(True, "all steps passed")]
        self.calls: list[tuple[str, CanaryRequest]] = []
        self.unserved_note = unserved

    def start(self, request: CanaryRequest) -> dict[str, Any]:
        self.calls.append(("start", request))
        return {"deployment": request.deployment, "weight": 10}

    def poll(self, request: CanaryRequest) -> CanaryOutcome | None:
        self.calls.append(("poll", request))
        return self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]

    def unserved(self, request: CanaryRequest) -> str | None:
        return self.unserved_note


def append_rows(path: Path, rows: int, *, seed: int = 1, shift: float = 0.0) -> None:
    """Append ``rows`` resampled iris rows (shifted by ``shift`` cm) to a CSV file."""
    iris_frame(rows=rows, seed=seed, shift=shift).to_csv(path, mode="a", header=False, index=False)


def make_config(data: Path, *triggers: dict[str, Any], **overrides: Any) -> LoopConfig:
    """A loop config for model ``iris`` trained by the example pipeline on ``data``."""
    raw: dict[str, Any] = {
        "model": "iris",
        "pipeline": {
            "entry_point": "shipyard.loop.examples:train_iris",
            "params": {"estimator": "logistic_regression", "cv": 2},
            "data": {"path": str(data)},
            "target": "species",
        },
        "triggers": list(triggers) or [{"kind": "schedule", "cron": "0 3 * * *"}],
        # An absolute bar: a retrain on a subset may trail, by a hair, a champion that saw
        # the holdout rows; comparisons with the champion are set per test.
        "gates": {"thresholds": ["accuracy>=0.8"]},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return LoopConfig.model_validate(raw)
