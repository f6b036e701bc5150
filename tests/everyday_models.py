"""Everyday scikit-learn pipelines a new user trains (tests of ONNX compiling and export).

A churn table with spaces and symbols in its column names, an integer column,
missing numbers and missing text, and a sign-up date; pipelines that impute,
encode, drop the date, or boost with HistGradientBoosting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler


def visits_with_late_values(
    rows: int, *, late_from: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Visits sorted by date: rows before ``late_from`` hold no missing age and no
    'enterprise' plan; about a fifth of later ages are missing and a third of later
    plans are 'enterprise' (what a small or head-of-file sample never shows)."""
    rng = np.random.default_rng(seed)
    late = np.arange(rows) >= late_from
    age = rng.integers(18, 80, rows).astype(float)
    age[late & (rng.random(rows) < 0.2)] = np.nan
    plan = np.where(
        late & (rng.random(rows) < 0.3), "enterprise", rng.choice(["basic", "pro"], rows)
    )
    X = pd.DataFrame({"age": age, "plan": plan, "visits": rng.poisson(5, rows).astype(float)})
    return X, (rng.random(rows) < 0.3).astype(int)


def churn(rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A churn table as a new user has it: spaces and symbols in names, an integer
    column, missing numbers and missing text, and a sign-up date."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "tenure (months)": rng.integers(0, 72, rows),
            "monthly charges ($)": rng.uniform(20, 120, rows).round(2),
            "contract": rng.choice(["month-to-month", "one year", "two year"], rows),
            "signup": pd.date_range("2021-01-01", periods=rows, freq="D"),
        }
    )
    X.loc[::17, "monthly charges ($)"] = np.nan
    X.loc[::13, "contract"] = np.nan
    score = X["monthly charges ($)"].fillna(60) / 40 - X["tenure (months)"] / 30
    score += (X["contract"] == "month-to-month") * 1.0
    y = (score + rng.normal(0, 0.3, rows) > 1.2).map({True: "churn", False: "stays"})
    return X, y


NUMBERS = ["tenure (months)", "monthly charges ($)"]


def _text_branch(strategy: str) -> Pipeline:
    imputer = (
        SimpleImputer(strategy="constant", fill_value="missing")
        if strategy == "constant"
        else SimpleImputer(strategy="most_frequent")
    )
    return make_pipeline(imputer, OneHotEncoder(handle_unknown="ignore"))


def everyday(kind: str) -> tuple[Any, pd.DataFrame]:
    """The pipeline of ``kind`` and the columns it is trained on."""
    X, _ = churn()
    if kind == "symbols":  # column names with spaces and symbols, text one-hot encoded
        prep = ColumnTransformer(
            [
                ("numbers", StandardScaler(), ["monthly charges ($)"]),
                ("text", OneHotEncoder(handle_unknown="ignore"), ["contract"]),
            ]
        )
        X = X[["monthly charges ($)", "contract"]].fillna({"monthly charges ($)": 60.0})
        return make_pipeline(prep, LogisticRegression(max_iter=1000)), X.fillna("none")
    if kind == "integer-imputed":  # an integer column through a mean imputer, text elsewhere
        prep = ColumnTransformer(
            [
                ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
                ("text", OneHotEncoder(handle_unknown="ignore"), ["contract"]),
            ]
        )
        X = X[[*NUMBERS, "contract"]].fillna({"contract": "none"})
        return make_pipeline(prep, LogisticRegression(max_iter=1000)), X
    if kind in ("text-most-frequent", "text-constant"):  # an imputer on a text column
        prep = ColumnTransformer(
            [
                ("numbers", SimpleImputer(strategy="median"), NUMBERS),
                ("text", _text_branch(kind.removeprefix("text-")), ["contract"]),
            ]
        )
        return make_pipeline(prep, LogisticRegression(max_iter=1000)), X[[*NUMBERS, "contract"]]
    if kind == "text-missing-category":  # the encoder learns a missing text as a category
        prep = ColumnTransformer(
            [
                ("numbers", SimpleImputer(), NUMBERS),
                ("text", OneHotEncoder(handle_unknown="ignore"), ["contract"]),
            ]
        )
        return make_pipeline(prep, LogisticRegression(max_iter=1000)), X[[*NUMBERS, "contract"]]
    if kind == "hist-gradient-boosting":  # NaN handled by the model itself
        return HistGradientBoostingClassifier(max_iter=30, random_state=0), X[NUMBERS]
    if kind == "hist-gradient-boosting-pipeline":
        prep = ColumnTransformer(
            [
                (
                    "text",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    ),
                    ["contract"],
                )
            ],
            remainder="passthrough",
        )
        model = make_pipeline(prep, HistGradientBoostingClassifier(max_iter=30, random_state=0))
        return model, X[[*NUMBERS, "contract"]]
    if kind == "numbers-by-name":  # numbers only, a ColumnTransformer picking them by name
        prep = ColumnTransformer(
            [("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS)]
        )
        return make_pipeline(prep, LogisticRegression(max_iter=1000)), X[NUMBERS]
    if kind == "dropped-date":  # the sign-up date is in the frame, the model drops it
        prep = ColumnTransformer(
            [
                ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
                ("text", _text_branch("most_frequent"), ["contract"]),
            ],
            remainder="drop",
        )
        return make_pipeline(prep, LogisticRegression(max_iter=1000)), X
    raise AssertionError(kind)


KINDS = [
    "symbols",
    "integer-imputed",
    "text-most-frequent",
    "text-constant",
    "text-missing-category",
    "hist-gradient-boosting",
    "hist-gradient-boosting-pipeline",
    "numbers-by-name",
    "dropped-date",
]
