"""Fixtures for the batch tests: a real registered iris model and iris-like rows.

The model is registered once per session: registering is the slow part, and the
loaded model is never changed by scoring, so sharing it keeps the suite fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard.client import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import iris_frame
from shipyard.registry.model import LoadedModel


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    """iris:1, a LogisticRegression on the course's columns, behind the production alias."""
    settings = Settings(home=tmp_path_factory.mktemp("batch") / "home", user="tester")
    client = Shipyard(settings)
    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    version = client.registry.log_model(model, "iris", sample=X)
    client.registry.set_alias("iris", "production", version.version)
    yield client.registry.load("iris")
    client.close()


def _iris_rows(n: int, seed: int = 0) -> pd.DataFrame:
    X, _ = iris_frame()
    rng = np.random.default_rng(seed)
    rows = X.iloc[rng.integers(0, len(X), n)].reset_index(drop=True)
    return (rows + rng.normal(0, 0.05, rows.shape)).round(3)


@pytest.fixture
def iris_rows() -> Callable[..., pd.DataFrame]:
    """``iris_rows(n)``: n iris-like rows, real iris rows drawn with replacement plus noise."""
    return _iris_rows
