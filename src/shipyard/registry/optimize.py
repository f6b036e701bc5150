"""Compiled runtimes: convert a registered version to ONNX, verify it, serve it with onnxruntime.

``shipyard optimize REF`` (or :func:`optimize_version`) converts the version's
model with skl2onnx (scikit-learn, pipelines included) or onnxmltools
(XGBoost, LightGBM), runs both the original and the ONNX graph on a reference
sample and compares them: predicted classes must be *equal*, probabilities
within ``atol`` (default ``1e-4``), regression values within ``atol`` plus
``rtol`` (default ``1e-4``) times the largest magnitude the original predicts:
a float32 graph rounds a house price of 350,000 to a few hundredths, which is
exact to 7 digits but far past any absolute tolerance fit for probabilities. A float32 graph is
tried first (it reproduces scikit-learn's float32 tree splits), then float64. Only a verified graph
is used for serving.

Storage: versions are immutable, so the original package and its manifest are
left untouched. The ONNX bytes go to the artifact store (content-addressed,
SHA-256 checked on read) and the outcome is recorded in the version's tags:

- ``onnx_status``: ``verified``, ``disagrees`` or ``failed``;
- ``onnx_digest``: the SHA-256 of the ONNX graph (verified or disagreeing);
- ``onnx_detail``: what was compared and how far apart, or why it failed;
- ``onnx_converter``: converter and version.

The reference sample is the one passed in (e.g. the training sample at
registration); without one, rows are drawn from the signature's ranges (the
training sample's min..max per column), deterministically.

Servers call :func:`compiled_model` at load: a verified graph replaces the
predictor; anything else keeps the original and logs why.

Example:
    >>> outcome = optimize_version(client.registry, "iris:3")        # doctest: +SKIP
    >>> outcome.status, outcome.detail                               # doctest: +SKIP
    ('verified', '500 rows: classes equal; max |probability diff| 6.0e-08 <= 0.0001')
"""

from __future__ import annotations

import copy
import importlib.metadata
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shipyard.extras import missing_modules, require_extra
from shipyard.registry.flavors.onnx import (
    INPUTS_METADATA,
    GraphInputs,
    OnnxPredictor,
    _graph_classes,
)
from shipyard.registry.model import LoadedModel
from shipyard.registry.signature import Signature
from shipyard.store import records
from shipyard.store.artifacts import sha256_bytes

if TYPE_CHECKING:  # the registry calls in here at registration: no import back at run time
    from shipyard.registry.service import Registry

logger = logging.getLogger("shipyard.registry")

DEFAULT_ATOL = 1e-4
#: Regression values: allowed difference relative to the largest |prediction| on the sample.
DEFAULT_RTOL = 1e-4
SAMPLE_ROWS = 500
TAG_STATUS = "onnx_status"
TAG_DIGEST = "onnx_digest"
TAG_DETAIL = "onnx_detail"
TAG_CONVERTER = "onnx_converter"
VERIFIED = "verified"
DISAGREES = "disagrees"
FAILED = "failed"
#: Rows of the registration sample the compiled graph is checked on (drawn evenly).
REGISTRATION_ROWS = 2000
#: Rows, per nullable column the sample shows no missing value in, checked with it missing.
MISSING_CHECK_ROWS = 20


class ConversionError(Exception):
    """The model could not be converted to ONNX (internal: recorded, never raised out)."""


@dataclass(frozen=True)
class OptimizationOutcome:
    """What :func:`optimize_version` found and recorded."""

    ref: str
    status: str
    detail: str
    digest: str | None = None
    converter: str | None = None

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED


# -- the compiled predictor ----------------------------------------------------------------


class CompiledPredictor(OnnxPredictor):
    """An ONNX session that answers labels and probabilities in one run.

    ``original_classes`` are the labels the original model answers; a converter
    that writes class indices (0..n-1) instead is mapped back to them.
    """

    def __init__(
        self, session: Any, graph_classes: np.ndarray | None, original_classes: Any
    ) -> None:
        super().__init__(session, graph_classes)
        #: The original model, for input a float32 graph cannot hold (set when served).
        self.fallback: LoadedModel | None = None
        self._float32 = any(dtype is np.float32 for _, dtype in self.inputs)
        self._label_map: np.ndarray | None = None
        if original_classes is not None and self.proba_output is not None:
            original = np.asarray(original_classes)
            graph = None if self.classes is None else np.asarray(self.classes)
            if graph is None or graph.tolist() != original.tolist():
                # e.g. LightGBM graphs answer 0..n-1: report the model's own labels.
                self._label_map = original
            self.classes = original

    def _labels(self, raw: Any, proba: np.ndarray | None) -> np.ndarray:
        if self._label_map is not None and proba is not None:
            return self._label_map[np.argmax(proba, axis=1)]
        out = np.asarray(raw)
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def _proba(self, out: Any) -> np.ndarray:
        if isinstance(out, list):  # ZipMap: one {label: probability} dict per row
            keys = list(out[0].keys())
            return np.array([[row[k] for k in keys] for row in out], dtype=np.float64)
        return np.asarray(out, dtype=np.float64)

    def predict_both(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and probabilities (None for regressors) from a single session run.

        A value beyond float32's range would reach a float32 graph as infinity, where
        the original computes in float64: such input is answered by the original.
        """
        feed = self._feed(X)
        # A value beyond float32 became infinity in the feed: only then look closer.
        if (
            self.fallback is not None
            and self._float32
            and _has_infinity(feed)
            and _beyond_float32(X)
        ):
            original = self.fallback
            frame = (
                X
                if isinstance(X, pd.DataFrame)
                else pd.DataFrame(X, columns=original.signature.names)
            )
            return original.score(original.prepare(frame))
        if self.proba_output is None:
            (out,) = self.session.run([self.label_output], feed)
            return self._labels(out, None), None
        raw, out = self.session.run([self.label_output, self.proba_output], feed)
        proba = self._proba(out)
        return self._labels(raw, proba), proba

    def takes_columns(self, signature: Signature) -> bool:
        """Whether the graph takes one named input per column it uses that
        :meth:`predict_both_columns` feeds exactly as the DataFrame path does: float
        and integer columns into float inputs, string columns into string inputs,
        nothing else. Columns the graph does not take (a dropped date) are not fed."""
        if not self.per_column or len(self.inputs) < 2:
            return False
        specs = {spec.name: spec for spec in signature.inputs}
        for name, dtype in self.inputs:
            spec = specs.get(self.columns[name])
            if spec is None or spec.categorical or dtype is None:
                return False
            if not (
                (spec.dtype in ("float", "integer") and dtype in (np.float32, np.float64))
                or (spec.dtype == "string" and dtype is np.object_)
            ):
                return False
        return True

    def predict_both_columns(
        self, columns: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """:meth:`predict_both` fed straight from validated columns (see
        :meth:`takes_columns`); None when the input needs the DataFrame path (a value
        beyond float32, answered by the original model there)."""
        with np.errstate(over="ignore"):
            feed = {}
            for name, dtype in self.inputs:
                values = columns[self.columns[name]]
                if dtype is np.object_:  # a missing value goes in as from a frame
                    values = np.where(pd.isna(values), self.missing_text, values)
                else:
                    values = values.astype(dtype)
                feed[name] = values.reshape(-1, 1)
        if self._float32 and _has_infinity(feed):
            return None
        if self.proba_output is None:
            (out,) = self.session.run([self.label_output], feed)
            return self._labels(out, None), None
        raw, out = self.session.run([self.label_output, self.proba_output], feed)
        proba = self._proba(out)
        return self._labels(raw, proba), proba

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_both(X)[0]

    def _predict_proba(self, X: Any) -> np.ndarray:
        proba = self.predict_both(X)[1]
        assert proba is not None
        return proba


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _has_infinity(feed: dict[str, np.ndarray]) -> bool:
    """Whether a floating-point input of the graph holds an infinity."""
    return any(a.dtype.kind == "f" and bool(np.isinf(a).any()) for a in feed.values())


def _beyond_float32(X: Any) -> bool:
    """Whether a finite number in ``X`` is too large for float32 (NaN is not)."""
    if isinstance(X, pd.DataFrame):
        numbers = X.select_dtypes(include="number")
        return any(_beyond_float32(numbers[c].to_numpy()) for c in numbers.columns)
    values = np.asarray(X)
    if values.dtype.kind != "f":
        return bool(
            values.dtype.kind in "iu" and values.size and np.abs(values).max() > _FLOAT32_MAX
        )
    with np.errstate(invalid="ignore"):
        return bool((np.abs(values) > _FLOAT32_MAX).any())


def session_from_bytes(data: bytes) -> Any:
    """An onnxruntime session, one thread per op: requests run in parallel already."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # LightGBM graphs warn on every run about label shapes
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def compiled_predictor(data: bytes, original_classes: Any) -> CompiledPredictor:
    import onnx

    proto = onnx.load_model_from_string(data)
    return CompiledPredictor(session_from_bytes(data), _graph_classes(proto), original_classes)


# -- conversion ----------------------------------------------------------------------------


def _estimator(model: LoadedModel) -> tuple[str, Any]:
    """The framework object behind a loaded model, and which converter takes it."""
    predictor = model.predictor
    flavor = model.flavor
    if flavor == "sklearn":
        return "skl2onnx", getattr(predictor, "model", None)
    if flavor == "xgboost":
        inner = getattr(predictor, "model", None)
        if inner is None:
            raise ConversionError("a raw XGBoost Booster (not XGBClassifier/XGBRegressor)")
        return "onnxmltools-xgboost", inner
    if flavor == "lightgbm":
        return "onnxmltools-lightgbm", getattr(predictor, "booster", None)
    raise ConversionError(
        f"flavor {flavor!r} has no ONNX converter (sklearn, xgboost and lightgbm do)"
    )


def _zipmap_off(estimator: Any) -> dict[Any, Any]:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if hasattr(final, "predict_proba"):
        return {id(final): {"zipmap": False}}
    return {}


def convert(model: LoadedModel, *, double: bool = False) -> tuple[bytes, str]:
    """ONNX bytes for ``model`` and the converter used; ConversionError if impossible.

    A model whose inputs are all numbers gets one matrix input (``input``), the
    fastest to feed. A scikit-learn pipeline with text columns (a ``ColumnTransformer``
    with a ``OneHotEncoder``...), or whose ``ColumnTransformer`` picks columns by name,
    gets one input per column it uses instead, with a string tensor for each text
    column; the graph's metadata maps each input to its column (see
    :class:`~shipyard.registry.flavors.onnx.GraphInputs`). Boosters take their category
    columns as category codes in the matrix (see :mod:`shipyard.registry.flavors.onnx`).
    """
    signature = model.signature
    converter, estimator = _estimator(model)
    if estimator is None:
        raise ConversionError(f"the {model.flavor} predictor does not expose its model")
    if converter != "skl2onnx":
        dates = [c.name for c in signature.inputs if c.dtype == "datetime"]
        if dates:
            raise ConversionError(
                f"column(s) {dates} hold datetimes, and an ONNX graph takes only numbers and text"
            )
    text = [c.name for c in signature.inputs if c.dtype == "string" and not c.categorical]
    if text and converter != "skl2onnx":
        raise ConversionError(
            f"text column(s) {text} that are not pandas category columns; only scikit-learn "
            "pipelines (ColumnTransformer with an encoder) take text in an ONNX graph"
        )
    n = len(signature.inputs)
    mapping: dict[str, str] | None = None
    try:
        if converter == "skl2onnx":
            from skl2onnx import convert_sklearn

            initial_types, per_column = _sklearn_inputs(signature, estimator, double=double)
            converted = _on_missing_text(estimator)
            proto = convert_sklearn(
                converted,
                initial_types=initial_types,
                options=_zipmap_off(converted),  # options are keyed by the object converted
                target_opset=None,
            )
            if per_column:
                mapping = _input_columns(proto, [name for name, _ in initial_types])
            version = "skl2onnx " + importlib.metadata.version("skl2onnx")
        else:
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType as MltFloat

            types = [("input", MltFloat([None, n]))]
            if converter == "onnxmltools-xgboost":
                # onnxmltools only reads features named f0, f1, ...: convert a copy without names.
                estimator = copy.deepcopy(estimator)
                estimator.get_booster().feature_names = None
                proto = onnxmltools.convert_xgboost(estimator, initial_types=types)
            else:
                proto = onnxmltools.convert_lightgbm(estimator, initial_types=types, zipmap=False)
            version = "onnxmltools " + importlib.metadata.version("onnxmltools")
    except ConversionError:
        raise
    except Exception as exc:  # converters raise many types (RuntimeError, MissingShape...)
        raise ConversionError(_converter_failure(exc, estimator)) from exc
    if mapping is not None:
        entry = proto.metadata_props.add()
        entry.key = INPUTS_METADATA
        entry.value = GraphInputs(mapping, MISSING_TEXT).to_json()
    return proto.SerializeToString(), version


#: What a missing text value is fed to a compiled graph as. A string tensor cannot
#: hold a missing value, and "" is a value a caller may send that the original model
#: keeps as text: the graph's text imputers replace exactly this string instead.
MISSING_TEXT = "<shipyard:missing>"
_IMPUTERS = ("SimpleImputer", "KNNImputer", "IterativeImputer")


def _parts(estimator: Any) -> Any:
    """Every fitted estimator in a pipeline, column transformer or feature union."""
    if isinstance(estimator, str):  # "drop", "passthrough"
        return
    yield estimator
    if hasattr(estimator, "steps"):
        for _, step in estimator.steps:
            yield from _parts(step)
    elif hasattr(estimator, "transformers_"):
        for _, part, _ in estimator.transformers_:
            yield from _parts(part)
    elif hasattr(estimator, "transformer_list"):
        for _, part in estimator.transformer_list:
            yield from _parts(part)


def _first_step(estimator: Any) -> Any:
    """What a frame meets first: a pipeline's first real step, recursively."""
    while hasattr(estimator, "steps"):
        steps = [s for _, s in estimator.steps if not isinstance(s, str) and s is not None]
        if not steps:
            return None
        estimator = steps[0]
    return estimator


def _is_missing_marker(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _text_imputer(part: Any) -> bool:
    """A SimpleImputer fitted on text that imputes NaN (skl2onnx wants a string marker)."""
    statistics = getattr(part, "statistics_", None)
    return (
        type(part).__name__ == "SimpleImputer"
        and statistics is not None
        and np.asarray(statistics).dtype.kind in "OUS"
        and _is_missing_marker(part.missing_values)
    )


def _text_encoder_with_missing(part: Any) -> bool:
    """A OneHotEncoder that learnt a missing text value (NaN) as a category of its own."""
    categories = getattr(part, "categories_", None)
    return (
        type(part).__name__ == "OneHotEncoder"
        and categories is not None
        and any(_missing_text_category(c) is not None for c in categories)
    )


def _missing_text_category(categories: Any) -> int | None:
    """Where NaN is among a text column's categories (scikit-learn sorts it last)."""
    values = np.asarray(categories)
    if values.dtype.kind != "O":
        return None
    found = [i for i, v in enumerate(values.tolist()) if _is_missing_marker(v)]
    return found[0] if found else None


def _on_missing_text(estimator: Any) -> Any:
    """``estimator``, or a copy that treats :data:`MISSING_TEXT` (what a missing text value
    is fed as) as the original treats NaN: text imputers replace it, and an encoder's
    category for a missing value is that string. The same answers, in a graph."""
    parts = list(_parts(estimator))
    if not any(_text_imputer(p) or _text_encoder_with_missing(p) for p in parts):
        return estimator
    estimator = copy.deepcopy(estimator)  # the loaded model serves as it is
    for part in _parts(estimator):
        if _text_imputer(part):
            part.missing_values = MISSING_TEXT
        elif _text_encoder_with_missing(part):
            categories = []
            for values in part.categories_:
                at = _missing_text_category(values)
                if at is not None:
                    values = np.asarray(values, dtype=object).copy()
                    values[at] = MISSING_TEXT
                categories.append(values)
            part.categories_ = categories
    return estimator


def _selected_names(columns: Any, names: list[str]) -> list[str] | None:
    """The column names a ColumnTransformer entry selects, or None when it selects by
    position (integers, a mask, a slice): the converter then counts graph inputs."""
    if isinstance(columns, str):
        return [columns]
    items = list(columns) if isinstance(columns, (list, tuple, np.ndarray, pd.Index)) else None
    if items is None or not all(isinstance(c, str) for c in items):
        return None
    return [c for c in items if c in names] if len(items) == len(set(items)) else None


def _column_routes(estimator: Any, names: list[str]) -> dict[str, list[Any]] | None:
    """For a model whose first step is a ColumnTransformer picking columns by name: each
    column it uses and the first steps that take it; None otherwise."""
    head = _first_step(estimator)
    if not hasattr(head, "transformers_"):
        return None
    routes: dict[str, list[Any]] = {}
    for _, part, columns in head.transformers_:
        if isinstance(part, str) and part == "drop":
            continue
        selected = _selected_names(columns, names)
        if selected is None:
            return None
        for name in selected:
            routes.setdefault(name, []).append(_first_step(part))
    return routes


def _sklearn_inputs(
    signature: Signature, estimator: Any, *, double: bool
) -> tuple[list[tuple[str, Any]], bool]:
    """skl2onnx input types, and whether they are one per column (else one matrix).

    One matrix for numbers only, unless a ColumnTransformer picks columns by name;
    else one typed input per column the model uses (a column the ColumnTransformer
    drops is no input, so a date it drops does not block compiling). An integer
    column that goes into an imputer is declared float: skl2onnx's imputer keeps its
    input type and cannot put a mean such as 37.27 into an integer tensor.
    """
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    number = DoubleTensorType if double else FloatTensorType
    routes = _column_routes(estimator, list(signature.names))
    if signature.is_numeric and routes is None:
        return [("input", number([None, len(signature.inputs)]))], False
    head = _first_step(estimator)
    types: list[tuple[str, Any]] = []
    for spec in signature.inputs:
        if routes is not None and spec.name not in routes:
            continue  # the model drops this column
        if spec.dtype == "datetime":
            raise ConversionError(
                f"column {spec.name!r} holds datetimes and the model uses it; an ONNX graph "
                "takes only numbers and text (derive numbers from it, e.g. the day of week, "
                "before training)"
            )
        if spec.dtype == "string":
            types.append((spec.name, StringTensorType([None, 1])))
        elif spec.dtype == "integer" and not _into_imputer(spec.name, head, routes):
            types.append((spec.name, Int64TensorType([None, 1])))
        else:
            types.append((spec.name, number([None, 1])))
    return types, True


def _into_imputer(name: str, head: Any, routes: dict[str, list[Any]] | None) -> bool:
    """Whether column ``name`` is first met by an imputer."""
    firsts = [head] if routes is None else routes.get(name, [])
    return any(type(step).__name__ in _IMPUTERS for step in firsts)


def _input_columns(proto: Any, columns: list[str]) -> dict[str, str]:
    """Graph input -> column: skl2onnx keeps the declared order but renames a column
    whose name is not an identifier (``monthly charges ($)`` -> ``monthly_charges____``)."""
    names = [i.name for i in proto.graph.input]
    if len(names) != len(columns):
        raise ConversionError(
            f"the converter wrote {len(names)} graph inputs for {len(columns)} columns "
            f"({columns}); Shipyard cannot tell which column feeds which input"
        )
    return dict(zip(names, columns, strict=True))


def _converter_failure(exc: Exception, estimator: Any = None) -> str:
    """The converter's error in a user's terms (its own text can run to a page).

    The first line of the error, cut before any dump of attribute values, and the
    error that caused it (skl2onnx wraps the real cause, e.g. protobuf refusing a
    value, in "Unable to create node ..."), so the reason is never lost.
    """
    text = str(exc)
    unsupported = re.search(r"for type '?<class '([\w.]+)'>", text)
    if unsupported:
        name = unsupported.group(1).rsplit(".", 1)[-1]
        return (
            f"the converter has no translation for {name} (a custom estimator, or one "
            "ONNX converters do not cover); only built-in scikit-learn, XGBoost and LightGBM "
            "steps convert"
        )
    message = f"{type(exc).__name__}: {_first_line(text)}"
    cause = _root_cause(exc)
    if cause is not None:
        message += f"; caused by {type(cause).__name__}: {_first_line(str(cause))}"
        if "Expected an int, got a boolean" in str(cause):
            message += (
                " (skl2onnx 1.20 writes a Python bool into an integer attribute, which "
                "protobuf 7.34 and later refuse: install protobuf<7.34, as shipyard[onnx] does)"
            )
    return message


def _first_line(text: str, limit: int = 300) -> str:
    """The first line of an error, cut before a dump of values (" with attributes={...")."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = re.split(r" and attributes=| with attributes=|=\{|=\[|=array\(", first)[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _root_cause(exc: BaseException) -> BaseException | None:
    """The innermost error that ``exc`` was raised from or while handling, if any."""
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    found = None
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        found = cause
        cause = cause.__cause__ or cause.__context__
    return found


# -- verification --------------------------------------------------------------------------


def reference_sample(
    signature: Signature, *, rows: int = SAMPLE_ROWS, seed: int = 0
) -> pd.DataFrame:
    """Rows drawn uniformly from each column's training range (0..1 when unknown).

    A column with known categories (text, or a category column) draws from them;
    a text column without (more than 20 distinct values in training) raises
    ConversionError: there is nothing plausible to draw.
    """
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for spec in signature.inputs:
        low = 0.0 if spec.minimum is None else float(spec.minimum)
        high = 1.0 if spec.maximum is None else float(spec.maximum)
        if spec.categories:
            known = np.asarray(spec.categories, dtype=object)
            drawn = known[rng.integers(0, len(known), rows)]
            columns[spec.name] = (
                pd.Categorical(drawn, dtype=spec.pandas_dtype) if spec.categorical else drawn
            )
        elif spec.dtype in ("string", "datetime"):
            raise ConversionError(
                f"column {spec.name!r} has no known values to draw a verification sample from"
            )
        elif spec.dtype == "boolean":
            columns[spec.name] = rng.integers(0, 2, rows).astype(bool)
        elif spec.dtype == "integer":
            columns[spec.name] = rng.integers(int(low), int(high) + 1, rows)
        else:
            columns[spec.name] = rng.uniform(low, high, rows)
    return pd.DataFrame(columns)


def compare(
    model: LoadedModel,
    compiled: CompiledPredictor,
    sample: pd.DataFrame,
    *,
    atol: float,
    rtol: float = DEFAULT_RTOL,
) -> tuple[bool, str]:
    """Whether ``compiled`` answers like ``model`` on ``sample``, and the evidence.

    Regression values may differ by ``atol + rtol * max |original prediction|``.
    """
    X = model.prepare(sample)
    labels = np.asarray(model.predictor.predict(X))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    # The input exactly as a server would hand it to the compiled graph.
    served = LoadedModel(model.manifest, compiled)
    fast_labels, fast_proba = compiled.predict_both(served.prepare(sample))
    rows = len(sample)
    if model.has_proba and fast_proba is not None:
        proba = np.asarray(model.predictor.predict_proba(X))  # type: ignore[attr-defined]
        mismatched = int(np.sum(labels.astype(str) != fast_labels.astype(str)))
        if proba.shape != fast_proba.shape:
            return False, f"probability shapes differ: {proba.shape} vs {fast_proba.shape}"
        diff = float(np.max(np.abs(proba - fast_proba))) if rows else 0.0
        evidence = f"{rows} rows: {mismatched} class(es) differ; max |probability diff| {diff:.1e}"
        ok = mismatched == 0 and diff <= atol
        if ok:
            evidence = f"{rows} rows: classes equal; max |probability diff| {diff:.1e} <= {atol:g}"
        return ok, evidence
    if model.signature.output.task == "classification":
        mismatched = int(np.sum(labels.astype(str) != fast_labels.astype(str)))
        return mismatched == 0, f"{rows} rows: {mismatched} class(es) differ"
    values, fast_values = labels.astype(float), fast_labels.astype(float)
    if values.shape != fast_values.shape:
        return False, f"prediction shapes differ: {values.shape} vs {fast_values.shape}"
    if not rows:
        return True, "0 rows"
    diff = float(np.max(np.abs(values - fast_values)))
    scale = float(np.max(np.abs(values)))
    allowed = atol + rtol * scale
    ok = diff <= allowed  # NaN anywhere compares False: never verified
    sign = "<=" if ok else ">"
    return ok, (
        f"{rows} rows: max |prediction diff| {diff:.1e} {sign} {allowed:.1e} "
        f"(atol {atol:g} + rtol {rtol:g} x max |prediction| {scale:.4g})"
    )


def optimize_version(
    registry: Registry,
    ref: str,
    *,
    sample: pd.DataFrame | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    trusted_pickle: bool = False,
) -> OptimizationOutcome:
    """Convert, verify and record the ONNX form of ``ref``; never raises for a bad model.

    The outcome is also written to the version's tags (see the module doc).
    """
    require_extra("onnx", "compiling a model to ONNX")
    record = registry.resolve(ref)
    model = registry.load(record.ref, trusted_pickle=trusted_pickle)
    digest: str | None = None
    converter: str | None = None
    status, detail = FAILED, ""
    if sample is None:
        try:
            sample = _verification_sample(registry, record, model)
        except ConversionError as exc:
            return _record(registry, record, FAILED, f"conversion failed: {exc}", None, None)
    sample = with_missing_values(sample, model.signature)
    # float32 first: scikit-learn's trees compare features as float32, so a float32 graph
    # reproduces their splits exactly (a float64 one can differ on split-point values).
    for double in (False, True):
        try:
            data, converter = convert(model, double=double)
            compiled = compiled_predictor(data, model.classes)
            ok, detail = compare(model, compiled, sample, atol=atol, rtol=rtol)
        except ConversionError as exc:
            status, detail = FAILED, f"conversion failed: {exc}"
            break  # the same model will not convert in double either
        except Exception as exc:  # onnxruntime refusing the graph, a converter bug...
            if status == DISAGREES:
                break  # the float32 graph ran and disagreed: that is the finding to report
            status, detail = (
                FAILED,
                f"the converted graph does not run: {type(exc).__name__}: {exc}",
            )
            continue
        digest = registry.artifacts.put_bytes(data)
        status = VERIFIED if ok else DISAGREES
        if ok:
            detail += " (float64 graph)" if double else " (float32 graph)"
            break
    return _record(registry, record, status, detail, digest, converter)


def with_missing_values(sample: pd.DataFrame, signature: Signature) -> pd.DataFrame:
    """``sample`` plus, for each nullable column it holds no missing value in, a few of
    its rows with that column missing.

    A column may be nullable without the sample showing it (the model imputes it:
    :meth:`~shipyard.registry.signature.Signature.widened`), and a server hands such
    rows to the graph: it must agree with the original on them too.
    """
    extra = []
    rows = sample.head(MISSING_CHECK_ROWS)
    for spec in signature.inputs:
        if not spec.nullable or spec.categorical or spec.name not in sample.columns:
            continue
        if sample[spec.name].isna().any():
            continue
        blank = rows[spec.name].where(np.zeros(len(rows), dtype=bool))  # missing, same dtype
        extra.append(rows.assign(**{spec.name: blank}))
    return pd.concat([sample, *extra], ignore_index=True) if extra else sample


def _verification_sample(
    registry: Registry, record: records.ModelVersion, model: LoadedModel
) -> pd.DataFrame:
    """Rows drawn from the signature; for text columns without known values, the stored
    rows of the training sample (the drift reference), if the version has them."""
    try:
        return reference_sample(model.signature)
    except ConversionError:
        stored = registry.reference_sample(record)
        if stored is None:
            raise ConversionError(
                "a text column has no known values to draw a verification sample from, and "
                "the version has no stored training sample"
            ) from None
    return stored


def _record(
    registry: Registry,
    record: records.ModelVersion,
    status: str,
    detail: str,
    digest: str | None,
    converter: str | None,
) -> OptimizationOutcome:
    """Write the outcome to the version's tags (see the module doc) and return it."""
    tags = {TAG_STATUS: status, TAG_DETAIL: detail[:1000]}
    if digest is not None:
        tags[TAG_DIGEST] = digest
    if converter is not None:
        tags[TAG_CONVERTER] = converter
    registry.models.set_version_tags(record.model, record.version, tags)
    outcome = OptimizationOutcome(record.ref, status, detail, digest, converter)
    logger.info("ONNX for %s: %s (%s)", record.ref, status, detail)
    return outcome


def log_model_optimized(
    registry: Registry,
    model: Any,
    name: str,
    *,
    sample: pd.DataFrame,
    atol: float = DEFAULT_ATOL,
    **log_kwargs: Any,
) -> tuple[records.ModelVersion, OptimizationOutcome]:
    """Register ``model`` (as :meth:`Registry.log_model`), then compile it against ``sample``.

    The training sample is the reference the ONNX graph must agree with. A model
    that cannot be compiled is registered all the same; the outcome says why.

    >>> version, outcome = log_model_optimized(registry, clf, "iris", sample=X)  # doctest: +SKIP
    """
    version = registry.log_model(model, name, sample=sample, optimize=False, **log_kwargs)
    trusted = bool(log_kwargs.get("trusted_pickle", False))
    outcome = optimize_version(
        registry, version.ref, sample=sample, atol=atol, trusted_pickle=trusted
    )
    return registry.resolve(version.ref), outcome


def compile_onnx_at_registration(
    registry: Registry,
    version: records.ModelVersion,
    sample: pd.DataFrame | None,
    *,
    requested: bool | None,
    trusted_pickle: bool = False,
) -> OptimizationOutcome | None:
    """The default last step of ``log_model``: compile to ONNX, verified on ``sample``.

    ``requested`` is ``log_model``'s ``optimize``: ``None`` (the default) compiles when
    the onnx extra is installed and the version has a sample to verify against, and
    records why not otherwise; ``False`` skips it (the version stays "not optimized");
    ``True`` insists (a missing extra raises). A graph is served only when it answers
    like the original on the sample; otherwise the original serves and the version's
    tags say why (``shipyard models show``).
    """
    if requested is False or version.flavor == "onnx":  # an ONNX model is a graph already
        return None
    if requested is None and missing_modules("onnx"):
        detail = "conversion failed: the onnx extra is not installed (pip install 'shipyard[onnx]')"
        return _record(registry, version, FAILED, detail, None, None)
    if sample is not None and len(sample) > REGISTRATION_ROWS:
        # Evenly spaced rows keep the check's cost bounded on a large training sample.
        sample = sample.iloc[np.linspace(0, len(sample) - 1, REGISTRATION_ROWS).astype(int)]
    try:
        return optimize_version(registry, version.ref, sample=sample, trusted_pickle=trusted_pickle)
    except Exception as exc:  # by default, compiling must never fail a registration
        if requested:
            raise
        detail = f"conversion failed: {type(exc).__name__}: {exc}"
        return _record(registry, version, FAILED, detail, None, None)


# -- serving and describing ------------------------------------------------------------------


def compiled_model(
    registry: Registry, record: records.ModelVersion, model: LoadedModel
) -> LoadedModel:
    """``model`` with its verified ONNX graph as predictor, or ``model`` unchanged.

    A graph that is missing, corrupt or fails to load is logged and ignored:
    the original always remains a correct answer.
    """
    tags = record.tags
    if tags.get(TAG_STATUS) != VERIFIED or not tags.get(TAG_DIGEST):
        return model
    try:
        data = registry.artifacts.get_bytes(tags[TAG_DIGEST])
        if sha256_bytes(data) != tags[TAG_DIGEST]:
            raise ValueError("the stored graph does not match its digest")
        predictor = compiled_predictor(data, model.classes)
    except Exception as exc:  # serve the original rather than fail to serve
        logger.warning("Serving %s without its ONNX graph: %s", record.ref, exc)
        return model
    predictor.fallback = model
    compiled = LoadedModel(model.manifest, predictor)
    compiled.runtime = "onnxruntime"  # type: ignore[attr-defined]
    return compiled


def runtime_name(model: LoadedModel) -> str:
    """``onnxruntime`` for a compiled model, else the flavor's own runtime."""
    return str(getattr(model, "runtime", model.flavor))


def describe_optimization(registry_or_client: Any, version: records.ModelVersion) -> list[str]:
    """Lines for ``shipyard models show``: how this version is served, and why.

    Accepts a :class:`Registry` or a client (anything with ``.registry``); it only
    reads ``version.tags``, so the argument is kept for a uniform call.
    """
    tags = version.tags
    status = tags.get(TAG_STATUS)
    if version.flavor == "onnx":
        return ["Runtime: onnxruntime (this version is an ONNX graph)."]
    if status is None:
        hint = f"Run `shipyard optimize {version.ref}`."
        return [f"Runtime: original ({version.flavor}); not optimized. {hint}"]
    detail = tags.get(TAG_DETAIL, "")
    converter = tags.get(TAG_CONVERTER, "")
    if status == VERIFIED:
        digest = tags.get(TAG_DIGEST, "")[:12]
        return [
            f"Runtime: onnxruntime (ONNX graph {digest}, {converter}), verified: {detail}. "
            f"`shipyard serve --no-onnx` serves the original ({version.flavor}) instead.",
        ]
    why = "disagrees with the original" if status == DISAGREES else "not converted"
    return [f"Runtime: original ({version.flavor}); ONNX {why}: {detail}"]


__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "CompiledPredictor",
    "OptimizationOutcome",
    "compile_onnx_at_registration",
    "compiled_model",
    "convert",
    "describe_optimization",
    "log_model_optimized",
    "optimize_version",
    "reference_sample",
    "runtime_name",
    "with_missing_values",
]
