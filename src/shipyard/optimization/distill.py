"""Distillation: a small student learns to answer like its teacher.

The student is named as ``module:Class?param=value&...``, e.g.
``sklearn.tree:DecisionTreeClassifier?max_depth=6``. It is trained on the
teacher's training sample (the rows kept with the version) plus jittered copies
(numbers moved by a few percent of their spread, category values sometimes
swapped for another seen value), labelled by the teacher itself:

- classifiers learn the teacher's *probabilities*: each row is repeated once per
  class, weighted by the teacher's probability of that class (the student then
  minimises the cross-entropy to the teacher's soft labels); a student that takes
  no ``sample_weight`` learns the teacher's labels instead;
- regressors learn the teacher's predictions.

A teacher that is a scikit-learn pipeline keeps its fitted preprocessing: only its
last step is replaced by the student, so text columns keep their encoding.

Example:
    >>> student = parse_student("sklearn.tree:DecisionTreeClassifier?max_depth=6")
    >>> student.get_params()["max_depth"]
    6
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, reason
from shipyard.registry.model import LoadedModel

JITTER_COPIES = 4
#: Numbers move by this share of the column's standard deviation.
JITTER_SCALE = 0.05
#: Chance that a text or category value is swapped for another value of its column.
SWAP_CHANCE = 0.05


def parse_student(text: str) -> Any:
    """An unfitted estimator from ``module:Class?param=value&...``."""
    path, _, query = text.partition("?")
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise InvalidInputError(
            f"--distill {text!r} is not MODULE:CLASS[?PARAM=VALUE&...] "
            "(e.g. sklearn.tree:DecisionTreeClassifier?max_depth=6)."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"--distill: cannot import module {module_name!r} ({exc})."
        ) from exc
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls) or not hasattr(cls, "fit") or not hasattr(cls, "predict"):
        raise InvalidInputError(
            f"--distill: {module_name} has no estimator class {class_name!r} "
            "(with fit and predict)."
        )
    params = {key: _value(raw) for key, raw in parse_qsl(query, keep_blank_values=True)}
    try:
        return cls(**params)
    except TypeError as exc:
        raise InvalidInputError(f"--distill {text!r}: {reason(exc)}.") from exc


def _value(raw: str) -> Any:
    """``6`` -> 6, ``0.1`` -> 0.1, ``None``/``True`` -> Python's, anything else a string."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def jittered(sample: pd.DataFrame, *, copies: int = JITTER_COPIES, seed: int = 0) -> pd.DataFrame:
    """``sample`` followed by ``copies`` jittered copies of it."""
    rng = np.random.default_rng(seed)
    frames = [sample]
    for _ in range(copies):
        frame = sample.copy()
        for name in frame.columns:
            column = frame[name]
            if pd.api.types.is_bool_dtype(column) or isinstance(column.dtype, pd.CategoricalDtype):
                frame[name] = _swapped(column, rng)
            elif pd.api.types.is_numeric_dtype(column):
                spread = float(np.nanstd(column.to_numpy(dtype=float))) or 1.0
                moved = column.to_numpy(dtype=float) + rng.normal(
                    0, JITTER_SCALE * spread, len(frame)
                )
                if pd.api.types.is_integer_dtype(column):
                    frame[name] = np.rint(moved).astype(column.dtype)
                else:
                    # Keep the training range: the signature refuses values far outside it.
                    low, high = np.nanmin(column.to_numpy(dtype=float)), np.nanmax(column)
                    frame[name] = np.clip(moved, low, high)
            else:
                frame[name] = _swapped(column, rng)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _swapped(column: pd.Series, rng: np.random.Generator) -> pd.Series:
    values = column.dropna().unique()
    if len(values) < 2:
        return column
    out = column.copy()
    swap = rng.random(len(column)) < SWAP_CHANCE
    out[swap] = rng.choice(values, int(swap.sum()))
    return out


def distill(
    teacher: LoadedModel,
    student: Any,
    sample: pd.DataFrame,
    *,
    estimator: Any = None,
    seed: int = 0,
) -> Any:
    """The fitted student (a pipeline when the teacher is one), ready to register.

    ``teacher`` answers the labels (as it is served: its ONNX graph, say);
    ``estimator`` is the teacher's own model object, whose preprocessing steps the
    student keeps when it is a scikit-learn pipeline.
    """
    # Coerced by the signature: the columns in its order, a column the teacher never
    # reads (``unused``, left out of the stored reference) as missing values of its type.
    rows = jittered(teacher.signature.coerce(sample), seed=seed)
    inner = estimator if estimator is not None else getattr(teacher.predictor, "model", None)
    pipeline = inner if inner is not None and hasattr(inner, "steps") else None
    if pipeline is None and not teacher.signature.is_numeric:
        raise InvalidInputError(
            "the student needs numeric inputs: this teacher takes text or category columns "
            "without a scikit-learn pipeline whose steps could encode them for the student"
        )
    features: Any = pipeline[:-1].transform(rows) if pipeline is not None else rows
    student = copy.deepcopy(student)
    if teacher.classes is not None:
        _fit_soft(student, features, teacher.predict_proba(rows), np.asarray(teacher.classes))
    else:
        student.fit(features, teacher.predict(rows))
    if pipeline is None:
        return student
    distilled = copy.copy(pipeline)
    distilled.steps = [*pipeline.steps[:-1], ("student", student)]
    return distilled


def _fit_soft(student: Any, X: Any, proba: np.ndarray, classes: np.ndarray) -> None:
    """Fit on soft labels: each row once per class, weighted by the teacher's probability."""
    takes_weight = "sample_weight" in inspect.signature(student.fit).parameters
    if not takes_weight:
        student.fit(X, classes[proba.argmax(axis=1)])
        return
    n, k = proba.shape
    weights = proba.ravel()
    keep = weights > 1e-6
    index = np.repeat(np.arange(n), k)[keep]
    labels = np.tile(classes, n)[keep]
    repeated = X.iloc[index] if isinstance(X, pd.DataFrame) else X[index]
    student.fit(repeated, labels, sample_weight=weights[keep])


__all__ = ["distill", "jittered", "parse_student"]
