"""A test-only pyfunc model whose latency the request controls (``delay`` seconds).

Registered as ``serving_slow_model:MODEL`` (an import path: no pickle), it lets
the tests hold a request in flight on purpose: SIGTERM draining, per-request
timeouts. It answers ``"big"``/``"small"`` by ``x`` with probabilities.

With ``SHIPYARD_TEST_SLOW_GATE`` set to a folder (a server process's
environment), a delayed call first creates ``entered`` in it, then returns as
soon as ``release`` appears there (or the delay runs out): a test in another
process knows the request is inside the model, and decides when it leaves.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd


class SlowClassifier:
    classes_ = np.array(["big", "small"])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        delay = float(X["delay"].max())
        if delay > 0:
            _wait(delay)
        p_big = (X["x"].to_numpy(dtype=float) > 0).astype(float) * 0.8 + 0.1
        return np.column_stack([p_big, 1 - p_big])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _wait(delay: float) -> None:
    gate = os.environ.get("SHIPYARD_TEST_SLOW_GATE")
    if not gate:
        time.sleep(delay)
        return
    (Path(gate) / "entered").touch()
    deadline = time.monotonic() + delay
    while not (Path(gate) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


MODEL = SlowClassifier()
