"""A test-only pyfunc model whose latency the request controls (``delay`` seconds).

Registered as ``serving_slow_model:MODEL`` (an import path: no pickle), it lets
the tests hold a request in flight on purpose: SIGTERM draining, per-request
timeouts. It answers ``"big"``/``"small"`` by ``x`` with probabilities.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


class SlowClassifier:
    classes_ = np.array(["big", "small"])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        delay = float(X["delay"].max())
        if delay > 0:
            time.sleep(delay)
        p_big = (X["x"].to_numpy(dtype=float) > 0).astype(float) * 0.8 + 0.1
        return np.column_stack([p_big, 1 - p_big])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


MODEL = SlowClassifier()
