"""Real models for the optimization and edge-export suites (scikit-learn datasets).

Each maker returns ``(model, X_train, X_holdout, y_holdout)``; the training frame is
the sample a version is registered with (kept as its reference sample).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

Made = tuple[Any, pd.DataFrame, pd.DataFrame, pd.Series]


def _split(X: pd.DataFrame, y: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame, Any, Any]:
    X = X.rename(columns=lambda c: str(c).replace(" ", "_").replace("/", "_"))
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def cancer() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    Xtr, Xte, ytr, yte = _split(data.data, data.target)
    return Xtr, Xte, ytr, yte


def digits_mlp() -> Made:
    data = load_digits(as_frame=True)
    Xtr, Xte, ytr, yte = _split(data.data, data.target)
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=0).fit(Xtr, ytr)
    return model, Xtr, Xte, yte


def forest(trees: int = 100) -> Made:
    Xtr, Xte, ytr, yte = cancer()
    model = RandomForestClassifier(trees, random_state=0, n_jobs=1).fit(Xtr, ytr)
    return model, Xtr, Xte, yte


def boosting(stages: int = 100) -> Made:
    Xtr, Xte, ytr, yte = cancer()
    model = GradientBoostingClassifier(n_estimators=stages, random_state=0).fit(Xtr, ytr)
    return model, Xtr, Xte, yte


def xgboost_model() -> Made:
    import xgboost as xgb

    Xtr, Xte, ytr, yte = cancer()
    model = xgb.XGBClassifier(n_estimators=60, max_depth=3, n_jobs=1).fit(Xtr, ytr)
    return model, Xtr, Xte, yte


def lightgbm_model() -> Made:
    import lightgbm as lgb

    Xtr, Xte, ytr, yte = cancer()
    model = lgb.LGBMClassifier(n_estimators=60, verbose=-1, n_jobs=1).fit(Xtr, ytr)
    return model, Xtr, Xte, yte


def wine_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Wine with a text column: the alcohol level in named bands."""
    data = load_wine(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace("/", "_"))
    X["strength"] = np.where(X["alcohol"] > 13.0, "strong", "light")
    labels = np.array(["barolo", "grignolino", "barbera"], dtype=object)
    return X, pd.Series(labels[data.target], name="cultivar")


def wine_pipeline() -> Made:
    X, y = wine_frame()
    Xtr, Xte, ytr, yte = _split(X, y)
    numbers = [c for c in X.columns if c != "strength"]
    pipe = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), numbers),
                        ("text", OneHotEncoder(handle_unknown="ignore"), ["strength"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=2000)),
        ]
    ).fit(Xtr, ytr)
    return pipe, Xtr, Xte, yte


MAKERS: dict[str, Callable[[], Made]] = {
    "pipeline": wine_pipeline,
    "forest": forest,
    "boosting": boosting,
    "mlp": digits_mlp,
    "xgboost": xgboost_model,
    "lightgbm": lightgbm_model,
}
