"""Test-only pyfunc models for the rollout tests, registered by import path (no pickle).

``GOOD`` answers ``big``/``small`` by the sign of ``x``; ``OTHER`` answers the
opposite way for negative ``x`` beyond -5 (a version that disagrees sometimes,
for shadow reports); ``BROKEN`` raises on every request (a 500); ``SLOW``
answers like ``GOOD`` after 60 ms.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


class Good:
    classes_ = np.array(["big", "small"])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p_big = (X["x"].to_numpy(dtype=float) > 0).astype(float) * 0.8 + 0.1
        return np.column_stack([p_big, 1 - p_big])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class Other(Good):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        x = X["x"].to_numpy(dtype=float)
        p_big = ((x > 0) | (x < -5)).astype(float) * 0.8 + 0.1
        return np.column_stack([p_big, 1 - p_big])


class Broken(Good):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        # Registration predicts the sample (x = +-10) and the server's warm-up the
        # middle of its range (x = 0): those must pass, or the version would never
        # be registered or loaded. Test traffic (0 < |x| < 10) fails.
        x = np.abs(X["x"].to_numpy(dtype=float))
        if ((x > 0) & (x < 10)).any():
            raise RuntimeError("this canary is broken on purpose")
        return super().predict_proba(X)


class Slow(Good):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        time.sleep(0.06)
        return super().predict_proba(X)


GOOD = Good()
OTHER = Other()
BROKEN = Broken()
SLOW = Slow()


class Unsure(Good):
    """Answers like ``GOOD`` with little confidence (0.55): CBPE estimates 55 % accuracy."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p_big = (X["x"].to_numpy(dtype=float) > 0).astype(float) * 0.1 + 0.45
        return np.column_stack([p_big, 1 - p_big])


UNSURE = Unsure()
