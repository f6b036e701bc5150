"""Fixtures for the batch tests: a real registered iris model and iris-like rows.

The model is registered once per session: registering is the slow part, and the
loaded model is never changed by scoring, so sharing it keeps the suite fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import iris_frame
from shipyard.registry.model import LoadedModel


@pytest.fixture(scope="session")
def batch_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    settings = Settings(home=tmp_path_factory.mktemp("batch") / "home", user="tester")
    client = Shipyard(settings)
    yield client
    client.close()


@pytest.fixture(scope="session")
def iris_model(batch_client: Shipyard) -> LoadedModel:
    """iris:1, a LogisticRegression on the course's columns, behind the production alias."""
    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    version = batch_client.registry.log_model(model, "iris", sample=X)
    batch_client.registry.set_alias("iris", "production", version.version)
    return batch_client.registry.load("iris")


@pytest.fixture(scope="session")
def iris_regressor(batch_client: Shipyard) -> LoadedModel:
    """A regressor (no classes, no probabilities): petal width from the other columns."""
    X, _ = iris_frame()
    features = X.drop(columns="petal_width")
    model = LinearRegression().fit(features, X["petal_width"])
    version = batch_client.registry.log_model(model, "petal-width", sample=features)
    return batch_client.registry.load(f"petal-width:{version.version}")


@pytest.fixture(scope="session")
def colors_model(batch_client: Shipyard) -> LoadedModel:
    """A pipeline whose OneHotEncoder refuses categories it never saw (red/green only)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"color": rng.choice(["red", "green"], 200), "size": rng.normal(size=200)})
    y = (X["color"] == "red") ^ (X["size"] > 0)
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="error"), ["color"]), remainder="passthrough"
    )
    model = make_pipeline(encode, LogisticRegression()).fit(X, y)
    version = batch_client.registry.log_model(model, "colors", sample=X)
    return batch_client.registry.load(f"colors:{version.version}")


def _iris_rows(n: int, seed: int = 0) -> pd.DataFrame:
    X, _ = iris_frame()
    rng = np.random.default_rng(seed)
    rows = X.iloc[rng.integers(0, len(X), n)].reset_index(drop=True)
    return (rows + rng.normal(0, 0.05, rows.shape)).round(3)


@pytest.fixture
def iris_rows() -> Callable[..., pd.DataFrame]:
    """``iris_rows(n)``: n iris-like rows, real iris rows drawn with replacement plus noise."""
    return _iris_rows
