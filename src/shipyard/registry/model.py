"""A loaded model, ready to predict: what ``shipyard.load_model(ref)`` returns.

It validates the input once against the signature (any of a DataFrame, one
record, a list of records, a 2-D array) and hands the predictor data it can
trust. Construction does no I/O: :func:`~shipyard.registry.package.read_package`
reads and verifies the package, this class only wraps the result.

Example:
    >>> model = shipyard.load_model("iris@production")          # doctest: +SKIP
    >>> model.predict({"sepal_length": 5.1, "sepal_width": 3.5,
    ...                "petal_length": 1.4, "petal_width": 0.2})  # doctest: +SKIP
    array(['setosa'], dtype=object)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import (
    InvalidInputError,
    ManifestError,
    SchemaError,
    ShipyardError,
    UnscorableInputError,
)
from shipyard.registry.flavors.base import Predictor
from shipyard.registry.manifest import Manifest
from shipyard.registry.signature import ColumnBatch, Signature, rows_text


class LoadedModel:
    """A model version with its manifest, signature and a checked ``predict``.

    ``predict`` and ``predict_proba`` accept a DataFrame, a record (dict), a list of
    records or a 2-D array, and return numpy arrays. Input that does not fit the
    signature raises :class:`~shipyard.errors.SchemaError` before the model runs.
    """

    def __init__(self, manifest: Manifest, predictor: Predictor) -> None:
        self.manifest = manifest
        self.predictor = predictor
        self.name: str = manifest.name
        self.version: int | None = manifest.version
        self.flavor: str = manifest.flavor
        try:
            self.signature: Signature = Signature.from_dict(manifest.signature)
        except InvalidInputError as exc:
            raise ManifestError(f"The manifest of {self.ref} has a bad signature: {exc}") from exc
        # A float matrix skips building a DataFrame on the hot path when the model
        # does not need column names (XGBoost, LightGBM, ONNX, unnamed sklearn).
        self._use_array = bool(getattr(predictor, "accepts_array", False)) and (
            self.signature.is_numeric
        )
        # A graph with one named input per column is fed a request's validated columns
        # straight, without a DataFrame (see prepare_request).
        takes_columns = getattr(predictor, "takes_columns", None)
        self._use_columns = (
            not self._use_array and callable(takes_columns) and takes_columns(self.signature)
        )

    @property
    def ref(self) -> str:
        """``name:version`` (or just the name for an unregistered package)."""
        return self.name if self.version is None else f"{self.name}:{self.version}"

    @property
    def takes_array(self) -> bool:
        """Whether :meth:`prepare` hands the predictor a float matrix (not a DataFrame)."""
        return self._use_array

    @property
    def classes(self) -> np.ndarray | None:
        """Class labels in ``predict_proba`` column order; None for regressors."""
        classes = getattr(self.predictor, "classes", None)
        if classes is None and self.signature.output.classes is not None:
            classes = np.asarray(self.signature.output.classes)
        return classes

    @property
    def has_proba(self) -> bool:
        """Whether :meth:`predict_proba` is available."""
        return callable(getattr(self.predictor, "predict_proba", None))

    def prepare(self, data: Any) -> pd.DataFrame | np.ndarray:
        """Validate ``data`` and convert it to what the predictor takes."""
        if self._use_array:
            return self.signature.coerce_array(data)
        return self.signature.coerce(data)

    def prepare_request(self, data: Any) -> pd.DataFrame | np.ndarray | ColumnBatch:
        """:meth:`prepare` for the serving path: a record or a list of rows becomes a
        :class:`~shipyard.registry.signature.ColumnBatch` when the predictor takes
        columns by name (same checks, same errors); :meth:`score` takes any of them."""
        if self._use_columns and isinstance(data, (Mapping, list)):
            return self.signature.coerce_columns(data)
        return self.prepare(data)

    def predict(self, data: Any) -> np.ndarray:
        """Predictions for every row of ``data``.

        A NaN or infinite value (a regression overflowing on huge inputs) raises
        :class:`~shipyard.errors.UnscorableInputError` naming the rows.
        """
        X = self.prepare(data)
        labels = np.asarray(self._run(self.predictor.predict, X))
        self._check_finite(X, labels, None)
        return labels

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, one column per entry of :attr:`classes`."""
        fn = getattr(self.predictor, "predict_proba", None)
        if not callable(fn):
            kind = self.signature.output.task
            raise InvalidInputError(
                f"Model {self.ref} ({self.flavor}, {kind}) does not estimate class "
                "probabilities; call predict() instead."
            )
        X = self.prepare(data)
        proba = np.asarray(self._run(fn, X))
        self._check_finite(X, None, proba)
        return proba

    def predict_with_proba(self, data: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions and class probabilities (None without them), validating once.

        One model call when the predictor answers both from one pass (see
        :meth:`score`); otherwise ``predict`` then ``predict_proba``.
        """
        return self.score(self.prepare(data))

    def score(
        self, X: pd.DataFrame | np.ndarray | ColumnBatch
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities for already validated ``X`` (:meth:`prepare`).

        A predictor with ``predict_both`` (ONNX, boosters, scikit-learn classifiers
        whose label is their most probable class) answers both from one pass.
        Every route and batch scoring go through here, so this is where output that
        is not an answer is refused: a row whose probabilities or regression value
        are NaN or infinite raises :class:`~shipyard.errors.UnscorableInputError`
        naming it (a label read off NaN probabilities would be the first class).

        Columns (:meth:`prepare_request`) are scored straight from their arrays; input
        the graph cannot take that way, a model error or an output that is not finite
        goes through the DataFrame path instead, which answers or names the cause.
        """
        if isinstance(X, ColumnBatch):
            scored = self._score_columns(X)
            if scored is not None:
                return scored
            X = X.frame()
        labels, proba = self._run(self._raw_score, X)
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        proba = None if proba is None else np.asarray(proba)
        self._check_finite(X, labels, proba)
        return labels, proba

    def _score_columns(self, X: ColumnBatch) -> tuple[np.ndarray, np.ndarray | None] | None:
        try:
            scored = self.predictor.predict_both_columns(X.columns)  # type: ignore[attr-defined]
        except Exception:  # the DataFrame path raises its own, named error
            return None
        if scored is None:
            return None
        labels = np.asarray(scored[0])
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        proba = None if scored[1] is None else np.asarray(scored[1])
        if not (_all_finite(labels) and _all_finite(proba)):
            return None
        return labels, proba

    def _raw_score(self, X: pd.DataFrame | np.ndarray) -> tuple[Any, Any]:
        predictor = self.predictor
        both = getattr(predictor, "predict_both", None)
        if both is not None:
            return both(X)
        labels = predictor.predict(X)
        proba = predictor.predict_proba(X) if self.has_proba else None  # type: ignore[attr-defined]
        return labels, proba

    def _check_finite(self, X: Any, labels: np.ndarray | None, proba: np.ndarray | None) -> None:
        """Refuse the rows whose numeric output is NaN or infinite, naming them."""
        if _all_finite(labels) and _all_finite(proba):  # the hot path: one pass each
            return
        bad = _non_finite_rows(labels)
        if proba is not None:
            proba_bad = _non_finite_rows(proba)
            bad = proba_bad if bad is None else bad | proba_bad
        if bad is None or not bad.any():
            return
        rows = np.flatnonzero(bad).tolist()
        what = "probabilities" if proba is not None else "prediction"
        failed = X.iloc[rows] if isinstance(X, pd.DataFrame) else np.asarray(X)[rows]
        culprit = furthest_out_of_range(self.signature, failed)
        raise UnscorableInputError(
            f"The model's {what} for {rows_text(rows)} are not finite (NaN or "
            f"infinity), so {self.ref} has no answer for {'it' if len(rows) == 1 else 'them'}: "
            f"the inputs are outside what the model can handle."
            f"{_outside_training(self.signature, X, rows[0])}",
            field=None if culprit is None else culprit[0],
            rows=rows,
        )

    def _run(self, fn: Any, X: pd.DataFrame | np.ndarray) -> Any:
        """``fn(X)``; when the model raises on input that passed the signature, say why.

        A category the model never saw (``OneHotEncoder(handle_unknown="error")``)
        is a :class:`~shipyard.errors.SchemaError` naming the column. Otherwise the
        rows the model refuses are found (by halving the input) and raised as
        :class:`~shipyard.errors.UnscorableInputError` naming them and the column
        furthest outside its training range: a finite but huge value makes
        scikit-learn refuse "a value too large for dtype('float32')", or overflows.
        """
        try:
            return fn(X)
        except ShipyardError:
            raise
        except MemoryError:
            raise
        except Exception as exc:
            unseen = _unseen_category(self.signature, X)
            if unseen is not None and _scores(fn, X, unseen.rows):
                unseen = None  # the model handles that value (handle_unknown="ignore")
            unseen = unseen or self._unseen_text(fn, X, exc)
            if unseen is not None:
                raise unseen from exc
            unscorable = self._unscorable(fn, X, exc)
            if unscorable is None:
                raise  # nothing is outside the training ranges: the model itself is at fault
            raise unscorable from exc

    def _unseen_text(self, fn: Any, X: Any, exc: Exception) -> SchemaError | None:
        """A value of a text column the model refuses, when the signature lists no categories.

        A text column with more distinct training values than the signature lists
        (``MAX_CATEGORIES``) has no known set to check against, yet the model's own
        encoder may refuse a value it never saw. The rows it refuses are found (by
        halving) and the column is the one whose value there the model's error
        quotes, so the answer is the same as for a listed category: a
        SchemaError naming the column and rows, never a traceback.
        """
        open_text = [
            c.name
            for c in self.signature.inputs
            if c.dtype == "string" and not c.categorical and c.categories is None
        ]
        if not open_text or not isinstance(X, pd.DataFrame):
            return None
        message = str(exc)

        def quoted(value: Any) -> bool:  # as encoders name it: ['zzz'] or "zzz"
            return isinstance(value, str) and (f"'{value}'" in message or f'"{value}"' in message)

        named = [n for n in open_text if any(quoted(v) for v in pd.unique(X[n]))]
        if not named:
            return None  # the error quotes none of the text values: not an unseen value
        rows = failing_rows(fn, X)
        for name in named:
            value = X[name].iloc[rows[0]]
            if quoted(value):
                return SchemaError(
                    f"Column {name!r} has {value!r} at row(s) {rows[:10]} (0-based), which "
                    f"the model never saw and cannot handle ({type(exc).__name__}: "
                    f"{message[:200]}); expected a value seen in training.",
                    field=name,
                    expected="a value seen in training",
                    rows=rows,
                )
        return None

    def _unscorable(self, fn: Any, X: Any, exc: Exception) -> UnscorableInputError | None:
        """The error naming the rows ``fn`` fails on; None when no value is out of range."""
        if furthest_out_of_range(self.signature, X) is None:
            return None
        rows = failing_rows(fn, X)
        failed = X.iloc[rows] if isinstance(X, pd.DataFrame) else np.asarray(X)[rows]
        culprit = furthest_out_of_range(self.signature, failed)
        where = (
            ""
            if culprit is None
            else f" Furthest outside the training range: {culprit[0]} = {culprit[1]:g}."
        )
        return UnscorableInputError(
            f"{self.ref} could not score {rows_text(rows)}: {type(exc).__name__}: {exc} "
            f"The values have the right types but are outside what the model can handle."
            f"{where}{_outside_training(self.signature, X, rows[0])}",
            field=None if culprit is None else culprit[0],
            expected=None if culprit is None else _training_range(self.signature, culprit[0]),
            rows=rows,
        )

    def __repr__(self) -> str:
        inputs = list(self.signature.names)
        return f"LoadedModel({self.ref!r}, flavor={self.flavor!r}, inputs={inputs})"


#: At most this many model calls go into finding the rows a model refuses.
_MAX_ISOLATION_CALLS = 512


def failing_rows(fn: Any, X: Any) -> list[int]:
    """The rows of ``X`` on which ``fn`` raises, found by halving (few calls for few bad rows).

    Past :data:`_MAX_ISOLATION_CALLS` calls the parts not yet split count as failing
    whole: they are reported, never scored silently. All rows when ``fn`` fails on
    none of the parts alone (the failure needs the rows together).
    """
    n = len(X)
    calls = 0
    bad: list[int] = []
    pending = [(0, n)]
    while pending:
        start, stop = pending.pop()
        if calls >= _MAX_ISOLATION_CALLS:
            bad.extend(range(start, stop))
            continue
        part = X.iloc[start:stop] if isinstance(X, pd.DataFrame) else X[start:stop]
        calls += 1
        try:
            fn(part)
        except Exception:
            if stop - start == 1:
                bad.append(start)
            else:
                middle = (start + stop) // 2
                pending.extend([(middle, stop), (start, middle)])
    return sorted(bad) if bad else list(range(n))


def _training_range(signature: Signature, name: str) -> str | None:
    spec = next((c for c in signature.inputs if c.name == name), None)
    if spec is None or spec.minimum is None or spec.maximum is None:
        return None
    return f"a number near the training range {spec.minimum:g}..{spec.maximum:g}"


def _all_finite(values: np.ndarray | None) -> bool:
    """True unless ``values`` is a float output holding NaN or infinity."""
    if values is None or values.dtype.kind not in "fc":
        return True
    return bool(np.isfinite(values).all())


def _non_finite_rows(values: np.ndarray | None) -> np.ndarray | None:
    """Per row, whether a float output holds NaN or infinity (None: not a float output)."""
    if values is None or values.dtype.kind not in "fc" or values.ndim == 0:
        return None
    finite = np.isfinite(values)
    return ~finite if finite.ndim == 1 else ~finite.reshape(len(finite), -1).all(axis=1)


def furthest_out_of_range(signature: Signature, X: Any) -> tuple[str, float, int] | None:
    """The numeric value furthest outside its column's training range, in range widths.

    Returns ``(column, value, row)``, or None when every value is inside its range.
    """
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=list(signature.names))
    best: tuple[float, str, float, int] | None = None
    for spec in signature.inputs:
        if spec.dtype not in ("float", "integer") or spec.minimum is None or spec.maximum is None:
            continue
        values = pd.to_numeric(frame[spec.name], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            width = max(float(spec.maximum) - float(spec.minimum), 1e-12)
            outside = np.abs(values - np.clip(values, spec.minimum, spec.maximum)) / width
        outside = np.nan_to_num(outside, nan=0.0, posinf=np.finfo(np.float64).max)
        if outside.size and outside.max() > 0:
            row = int(outside.argmax())
            if best is None or outside[row] > best[0]:
                best = (float(outside[row]), spec.name, float(values[row]), row)
    return None if best is None else (best[1], best[2], best[3])


def _outside_training(signature: Signature, X: Any, row: int) -> str:
    """`` Row 1: x 1e+308 (training 4.3..7.9).`` for the columns outside their sample range."""
    parts = []
    for j, spec in enumerate(signature.inputs):
        if spec.minimum is None or spec.maximum is None:
            continue
        value = X[spec.name].iloc[row] if isinstance(X, pd.DataFrame) else X[row, j]
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not spec.minimum <= number <= spec.maximum:
            parts.append(f"{spec.name} {number:g} (training {spec.minimum:g}..{spec.maximum:g})")
    if not parts:
        return ""
    return f" Row {row}: {'; '.join(parts[:5])}."


def _scores(fn: Any, X: pd.DataFrame, rows: list[int]) -> bool:
    """Whether the model answers for ``rows`` of ``X`` alone.

    An unseen category is only the cause when the rows holding it fail on their
    own: an encoder with ``handle_unknown="ignore"`` scores them, and another row
    of the same batch (a huge number, say) is what the model refused.
    """
    try:
        fn(X.iloc[rows])
    except Exception:
        return False
    return True


def _unseen_category(signature: Signature, X: Any) -> SchemaError | None:
    if not isinstance(X, pd.DataFrame):
        return None
    for spec in signature.inputs:
        if spec.dtype != "string" or spec.categories is None:
            continue
        values = X[spec.name]
        unseen = ~values.isin(spec.categories) & values.notna()
        if unseen.any():
            rows = np.flatnonzero(unseen.to_numpy()).tolist()
            return SchemaError(
                f"Column {spec.name!r} has {values[unseen].iloc[0]!r} at row(s) {rows[:10]} "
                f"(0-based), which the model never saw and cannot handle; expected one of "
                f"{list(spec.categories)}.",
                field=spec.name,
                expected=f"one of {list(spec.categories)}",
                rows=rows,
            )
    return None


__all__ = ["LoadedModel"]
