"""ONNX models, saved byte for byte and served with onnxruntime.

The graph says what it takes: one matrix input (``[None, n_features]``) gets
the whole frame in signature order, cast to the input's element type (float32
for most converters); several inputs get one column each, by name. A graph
Shipyard compiled itself says in its metadata (``shipyard.inputs``, see
:class:`GraphInputs`) which column feeds each input: converters rename a column
such as ``monthly charges ($)`` to an input ``monthly_charges____``, and a model
that drops a column (``remainder="drop"``) has no input for it. A
classifier's outputs (a label tensor, then probabilities either as a tensor or
as skl2onnx's ZipMap list of dicts) become ``predict``/``predict_proba``; the
class labels are read from the graph.

Example:
    >>> OnnxFlavor().name
    'onnx'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, ManifestError
from shipyard.registry.flavors.base import OptionalMethod, module_root, option_file

MODEL_FILE = "model.onnx"
_NP_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}
_CLASS_ATTRS = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
#: Graph metadata key (``metadata_props``) that Shipyard's compiler writes: see GraphInputs.
INPUTS_METADATA = "shipyard.inputs"


@dataclass(frozen=True)
class GraphInputs:
    """How a frame's columns feed a graph with one input per column.

    ``columns`` maps each graph input to the signature column it takes (the
    converter's names are sanitized: ``monthly charges ($)`` becomes
    ``monthly_charges____``); ``missing_text`` is what a missing text value is
    fed as (a text imputer in the graph replaces exactly that string).
    Kept in the graph's own metadata so every copy of the graph (served,
    quantized, exported to the edge) is fed the same way.
    """

    columns: dict[str, str] = field(default_factory=dict)
    missing_text: str = ""

    def to_json(self) -> str:
        return json.dumps({"columns": self.columns, "missing_text": self.missing_text})

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> GraphInputs | None:
        """The mapping a graph carries, or None for a graph without it (any ONNX file)."""
        raw = metadata.get(INPUTS_METADATA)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            columns = {str(k): str(v) for k, v in data["columns"].items()}
            missing = str(data.get("missing_text", ""))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(
                f"The graph's {INPUTS_METADATA} metadata is unreadable: {exc}"
            ) from exc
        return cls(columns, missing)


def _model_bytes(model: Any) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, Path)):
        return Path(model).read_bytes()
    return bytes(model.SerializeToString())


def _graph_classes(proto: Any) -> np.ndarray | None:
    """Class labels written into the graph by the converter (LinearClassifier, ZipMap, ...)."""
    for node in proto.graph.node:
        for attr in node.attribute:
            if attr.name in _CLASS_ATTRS:
                if attr.strings:
                    return np.array([s.decode() for s in attr.strings], dtype=object)
                return np.array(list(attr.ints), dtype=np.int64)
    return None


def _matrix(X: pd.DataFrame, dtype: Any) -> np.ndarray:
    """One numeric matrix; a ``category`` column goes in as its category codes.

    Boosters split on a category's code (its position in the training categories,
    which the signature's dtype keeps), so their converted graphs take the codes as
    numbers, with NaN for a missing value as the boosters themselves do.
    """
    categorical = [isinstance(t, pd.CategoricalDtype) for t in X.dtypes]
    if not any(categorical):
        return X.to_numpy(dtype=dtype)
    columns = [
        np.where(X[c].cat.codes.to_numpy() < 0, np.nan, X[c].cat.codes.to_numpy())
        if is_cat
        else X[c].to_numpy(dtype=np.float64, na_value=np.nan)
        for c, is_cat in zip(X.columns, categorical, strict=True)
    ]
    return np.column_stack(columns).astype(dtype, copy=False)


def _column(values: pd.Series, dtype: Any, missing_text: str = "") -> np.ndarray:
    """One named input: a string tensor gets text (a missing value as ``missing_text``),
    others numbers (an integer column fed to a float input is cast, missing as NaN)."""
    if dtype is np.object_:
        text = values.astype(object).to_numpy(dtype=object)
        return np.where(pd.isna(text), missing_text, text)
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.dtype.categories.dtype)
    if np.dtype(dtype).kind == "f":
        return values.to_numpy(dtype=dtype, na_value=np.nan)
    return values.to_numpy(dtype=dtype)


#: Up to this many rows (a request, not a batch job), named inputs are cut from one
#: object matrix: one conversion for the frame costs a fifth of one Series per column.
SMALL_FRAME_ROWS = 64


def _small_frame_feed(
    X: pd.DataFrame,
    inputs: list[tuple[str, Any]],
    columns: dict[str, str] | None = None,
    missing_text: str = "",
) -> dict[str, np.ndarray] | None:
    """The named inputs of a few rows, or None for values only :func:`_column` converts."""
    values = X.to_numpy(dtype=object)
    position = {name: i for i, name in enumerate(X.columns)}
    feed = {}
    try:
        for name, dtype in inputs:
            column = values[:, position[name if columns is None else columns[name]]]
            if dtype is np.object_:
                column = np.where(pd.isna(column), missing_text, column)
            else:
                column = column.astype(dtype)
            feed[name] = column.reshape(-1, 1)
    except (TypeError, ValueError):  # e.g. pd.NA in a nullable integer column
        return None
    return feed


class OnnxPredictor:
    """An onnxruntime session behind the Predictor interface."""

    feature_names: tuple[str, ...] | None = None
    predict_proba = OptionalMethod("_predict_proba", flag="_is_classifier")

    def __init__(self, session: Any, classes: np.ndarray | None) -> None:
        self.session = session
        self.inputs = [(i.name, _NP_TYPES.get(i.type)) for i in session.get_inputs()]
        unsupported = [i.name for i in session.get_inputs() if i.type not in _NP_TYPES]
        if unsupported:
            raise ManifestError(f"ONNX inputs {unsupported} have types Shipyard cannot feed.")
        outputs = session.get_outputs()
        mapping = GraphInputs.from_metadata(_metadata(session))
        #: One input per column (by name), or one matrix of every column in order.
        self.per_column = mapping is not None or len(self.inputs) > 1
        #: Graph input -> the column that feeds it (the same name for a graph without mapping).
        self.columns = {name: name for name, _ in self.inputs}
        self.missing_text = ""
        if mapping is not None:
            unmapped = [name for name in self.columns if name not in mapping.columns]
            if unmapped:
                raise ManifestError(
                    f"The graph's {INPUTS_METADATA} metadata names no column for input(s) "
                    f"{unmapped}."
                )
            self.columns = {name: mapping.columns[name] for name in self.columns}
            self.missing_text = mapping.missing_text
        self.accepts_array = not self.per_column and self.inputs[0][1] is not np.object_
        if self.per_column:
            self.feature_names = tuple(self.columns[name] for name, _ in self.inputs)
        # skl2onnx classifiers: [label, probabilities]; regressors: [variable].
        is_classifier = len(outputs) >= 2 and (
            outputs[1].type.startswith("seq(map(") or len(outputs[1].shape or []) == 2
        )
        self.label_output = outputs[0].name
        self.proba_output = outputs[1].name if is_classifier else None
        self.classes = classes if is_classifier else None
        self._is_classifier = is_classifier

    def _feed(self, X: Any) -> dict[str, np.ndarray]:
        # A value beyond a float32 input's range becomes infinity, silently: the
        # compiled predictor looks for that and answers such input with the original.
        with np.errstate(over="ignore"):
            return self._feed_inputs(X)

    def _feed_inputs(self, X: Any) -> dict[str, np.ndarray]:
        if not self.per_column:
            name, dtype = self.inputs[0]
            arr = _matrix(X, dtype) if isinstance(X, pd.DataFrame) else np.asarray(X)
            return {name: arr.astype(dtype, copy=False)}
        if not isinstance(X, pd.DataFrame):
            raise InvalidInputError("This ONNX model takes named inputs; pass a DataFrame.")
        missing = [c for c in self.columns.values() if c not in X.columns]
        if missing:
            raise InvalidInputError(f"Column(s) {missing} are missing; this model needs them.")
        if len(X) <= SMALL_FRAME_ROWS:
            feed = _small_frame_feed(X, self.inputs, self.columns, self.missing_text)
            if feed is not None:
                return feed
        return {
            name: _column(X[self.columns[name]], dtype, self.missing_text).reshape(-1, 1)
            for name, dtype in self.inputs
        }

    def predict(self, X: Any) -> np.ndarray:
        (out,) = self.session.run([self.label_output], self._feed(X))
        out = np.asarray(out)
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def _predict_proba(self, X: Any) -> np.ndarray:
        (out,) = self.session.run([self.proba_output], self._feed(X))
        if isinstance(out, list):  # ZipMap: one {label: probability} dict per row
            if self.classes is None:
                self.classes = np.array(list(out[0].keys()))
            return np.array([[row[c] for c in self.classes.tolist()] for row in out])
        return np.asarray(out)


def _metadata(session: Any) -> dict[str, str]:
    """The graph's ``metadata_props`` as onnxruntime reports them."""
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except AttributeError:  # a stand-in session (tests) has no model metadata
        return {}


class OnnxFlavor:
    """An ``onnx.ModelProto``, its serialised bytes, or a path to a ``.onnx`` file."""

    name = "onnx"
    packages: tuple[str, ...] = ("onnxruntime", "onnx")

    def handles(self, model: Any) -> bool:
        if module_root(model) == "onnx" and type(model).__name__ == "ModelProto":
            return True
        if isinstance(model, (str, Path)):
            return str(model).endswith(".onnx")
        return isinstance(model, (bytes, bytearray))

    def save(self, model: Any, dest: Path, *, trusted_pickle: bool) -> dict[str, Any]:
        import onnx

        data = _model_bytes(model)
        try:
            onnx.checker.check_model(onnx.load_model_from_string(data))
        except Exception as exc:  # DecodeError, ValidationError: not a usable ONNX model
            raise InvalidInputError(f"This is not a valid ONNX model: {exc}") from exc
        (dest / MODEL_FILE).write_bytes(data)
        return {"format": "onnx", "file": MODEL_FILE}

    def load(self, src: Path, options: dict[str, Any], *, trusted_pickle: bool) -> Any:
        import onnx
        import onnxruntime as ort

        path = option_file(src, options)
        try:
            proto = onnx.load(str(path))
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnx/onnxruntime raise their own error types
            raise ManifestError(f"{path} is not a loadable ONNX model: {exc}") from exc
        return OnnxPredictor(session, _graph_classes(proto))


__all__ = ["INPUTS_METADATA", "GraphInputs", "OnnxFlavor", "OnnxPredictor"]
