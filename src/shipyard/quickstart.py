"""The quickstart: an iris species classifier and a regression model, end to end.

Trains on data scikit-learn ships (no download), records runs with their
params, metrics and training-data fingerprints, registers the versions, points
``production`` at the better one and predicts through ``load_model`` exactly
as a user would. ``shipyard quickstart`` (and ``make demo``) runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard._client import Shipyard
from shipyard.extras import require_extra
from shipyard.store import records

#: Iris measurements (cm) as plain field names, the names requests and examples use.
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
#: One iris record (a setosa), the request body the README and the demo send.
IRIS_RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@dataclass
class QuickstartResult:
    versions: list[records.ModelVersion] = field(default_factory=list)
    production: dict[str, int] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Iris with plain column names (``sepal_length``...) and species names as labels."""
    bunch = load_iris(as_frame=True)
    features = bunch.data.set_axis(IRIS_FEATURES, axis=1)
    labels = pd.Series(np.asarray(bunch.target_names)[bunch.target], name="species")
    return features, labels


def diabetes_frame() -> tuple[pd.DataFrame, pd.Series]:
    bunch = load_diabetes(as_frame=True)
    return bunch.data, bunch.target.rename("progression")


def run_quickstart(client: Shipyard, *, seed: int = 0) -> QuickstartResult:
    result = QuickstartResult()
    _train_iris(client, result, seed)
    _train_diabetes(client, result, seed)
    iris = client.registry.load("iris")
    records_in = [IRIS_RECORD, {**IRIS_RECORD, "petal_length": 5.0, "petal_width": 1.8}]
    for record, label, proba in zip(
        records_in, iris.predict(records_in), iris.predict_proba(records_in), strict=True
    ):
        result.predictions.append(
            {
                "model": f"iris:{iris.version}",
                "input": record,
                "prediction": str(label),
                "probability": float(np.max(proba)),
            }
        )
    return result


def _train_iris(client: Shipyard, result: QuickstartResult, seed: int) -> None:
    X, y = iris_frame()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=seed, stratify=y
    )
    candidates = {
        "logistic-regression": make_pipeline(StandardScaler(), LogisticRegression(C=0.05)),
        "random-forest": RandomForestClassifier(n_estimators=100, random_state=seed),
    }
    best: tuple[float, int] | None = None
    for run_name, estimator in candidates.items():
        with client.tracker.start_run("iris", name=run_name) as run:
            run.log_dataset(pd.concat([X_train, y_train], axis=1), source="sklearn iris")
            estimator.fit(X_train, y_train)
            predicted = estimator.predict(X_test)
            metrics = {
                "accuracy": float(accuracy_score(y_test, predicted)),
                "f1_macro": float(f1_score(y_test, predicted, average="macro")),
            }
            run.log_params(_params_of(estimator))
            run.log_metrics(metrics)
            version = client.registry.log_model(
                estimator,
                "iris",
                sample=X_train,
                metrics=metrics,
                run_id=run.id,
                data_fingerprint=run.datasets["training"].to_dict(),
                description=f"iris species classifier ({run_name})",
            )
        result.versions.append(version)
        if best is None or metrics["accuracy"] > best[0]:
            best = (metrics["accuracy"], version.version)
    assert best is not None
    client.registry.set_alias("iris", "production", best[1], reason="quickstart: best accuracy")
    result.production["iris"] = best[1]


def _train_diabetes(client: Shipyard, result: QuickstartResult, seed: int) -> None:
    require_extra("lightgbm", "the quickstart's LightGBM diabetes model")
    from lightgbm import LGBMRegressor  # an optional extra: imported only when used

    X, y = diabetes_frame()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed)
    estimator = LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=15, verbose=-1)
    with client.tracker.start_run("diabetes", name="lightgbm") as run:
        run.log_dataset(pd.concat([X_train, y_train], axis=1), source="sklearn diabetes")
        estimator.fit(X_train, y_train)
        predicted = estimator.predict(X_test)
        metrics = {
            "mae": float(mean_absolute_error(y_test, predicted)),
            "r2": float(r2_score(y_test, predicted)),
        }
        run.log_params(_params_of(estimator))
        run.log_metrics(metrics)
        version = client.registry.log_model(
            estimator,
            "diabetes",
            sample=X_train,
            metrics=metrics,
            run_id=run.id,
            data_fingerprint=run.datasets["training"].to_dict(),
            description="disease progression regressor (LightGBM)",
        )
    result.versions.append(version)
    client.registry.set_alias("diabetes", "production", version.version, reason="quickstart")
    result.production["diabetes"] = version.version


def _params_of(estimator: Any) -> dict[str, str]:
    """The estimator's own settings (not nested objects), as run params."""
    return {
        key: str(value)
        for key, value in estimator.get_params(deep=True).items()
        if isinstance(value, int | float | str | bool) or value is None
    }
