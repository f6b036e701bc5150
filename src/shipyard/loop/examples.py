"""A real training pipeline for the iris data, used by the tests, the examples and the demo.

``train_iris`` is an entry point as the loop expects one
(``shipyard.loop.examples:train_iris``): it takes the data (a DataFrame, or a
CSV/Parquet path) and parameters, and returns the fitted model with its
cross-validated metrics.

>>> frame = iris_frame()
>>> model, metrics = train_iris(frame, {"estimator": "logistic_regression", "target": "species"})
>>> metrics["accuracy"] > 0.9
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from shipyard.errors import InvalidInputError
from shipyard.tables import read_table

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
ESTIMATORS = ("logistic_regression", "random_forest", "dummy")


def iris_frame(*, shift: float = 0.0, rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """scikit-learn's iris as a DataFrame with a ``species`` column (class names).

    ``shift`` adds that many centimetres to every measurement (a drifted
    batch); ``rows`` resamples that many rows with replacement using ``seed``.
    """
    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=list(FEATURES))
    frame["species"] = np.asarray(bunch.target_names)[bunch.target]
    if rows is not None:
        rng = np.random.default_rng(seed)
        frame = frame.iloc[rng.integers(0, len(frame), size=rows)].reset_index(drop=True)
    if shift:
        frame[list(FEATURES)] = frame[list(FEATURES)] + shift
    return frame


def _estimator(params: dict[str, Any]) -> Any:
    kind = params.get("estimator", "logistic_regression")
    seed = int(params.get("random_state", 0))
    if kind == "logistic_regression":
        return LogisticRegression(
            C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 500))
        )
    if kind == "random_forest":
        return RandomForestClassifier(
            n_estimators=int(params.get("n_estimators", 50)),
            max_depth=params.get("max_depth"),
            random_state=seed,
            n_jobs=1,
        )
    if kind == "dummy":  # always the most frequent class: the bad challenger of the demo
        return DummyClassifier(strategy="most_frequent")
    raise InvalidInputError(f"params.estimator is {kind!r}; expected one of {ESTIMATORS}.")


def train_iris(
    source: pd.DataFrame | str | Path, params: dict[str, Any]
) -> tuple[Any, dict[str, float]]:
    """Fit the estimator ``params["estimator"]`` on ``source`` and cross-validate it.

    Params: ``target`` (default ``species``), ``estimator`` (one of
    :data:`ESTIMATORS`), ``C``/``max_iter`` (logistic regression),
    ``n_estimators``/``max_depth`` (random forest), ``random_state``, ``cv``
    (folds, default 3). Metrics: ``accuracy`` (mean cross-validated accuracy,
    the baseline monitoring compares live accuracy with) and ``train_rows``.
    """
    data = source if isinstance(source, pd.DataFrame) else read_table(source)
    target = params.get("target", "species")
    if target not in data.columns:
        raise InvalidInputError(
            f"The training data has no target column {target!r}; columns: {list(data.columns)}."
        )
    missing = [c for c in FEATURES if c not in data.columns]
    if missing:
        raise InvalidInputError(f"The training data lacks feature columns {missing}.")
    X, y = data[list(FEATURES)], data[target]
    folds = min(int(params.get("cv", 3)), int(y.value_counts().min()))
    accuracy = float("nan")
    if folds >= 2:
        accuracy = float(cross_val_score(_estimator(params), X, y, cv=folds).mean())
    model = _estimator(params).fit(X, y)
    return model, {"accuracy": accuracy, "train_rows": float(len(data))}
