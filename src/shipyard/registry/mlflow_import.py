"""Read a model saved by MLflow (its ``MLmodel`` folder) without installing MLflow.

Only the scikit-learn flavor is read. The model file is loaded with the same
rules as a Shipyard package: a skops file through the platform's trust list
(any ``skops_trusted_types`` written by MLflow is ignored: trust is never read
from the artifact), a pickle or cloudpickle only with ``trusted_pickle=True``.
MLflow's column signature becomes a :class:`Signature` (ranges unknown);
tensor signatures, which name no columns, give ``None``.

Example:
    >>> model, signature, meta = read_mlflow_model(Path("mlruns/0/abc/model"))  # doctest: +SKIP
    >>> meta["mlflow_version"], signature.names                                # doctest: +SKIP
    ('2.15.1', ('sepal_length', 'sepal_width', 'petal_length', 'petal_width'))
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, cast

import numpy as np
import pandas as pd
import yaml

from shipyard.errors import InvalidInputError, ManifestError
from shipyard.registry.flavors.base import pickle_load
from shipyard.registry.flavors.sklearn import load_skops
from shipyard.registry.signature import ColumnSpec, DType, OutputSpec, Signature

MLMODEL_NAME = "MLmodel"
# MLflow column types -> Shipyard dtypes ("binary" and tensors have no equivalent).
_TYPES = {
    "double": "float",
    "float": "float",
    "long": "integer",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "datetime": "datetime",
}
_META_KEYS = (
    "artifact_path",
    "mlflow_version",
    "model_uuid",
    "model_id",
    "run_id",
    "utc_time_created",
    "databricks_runtime",
    "metadata",
)


def read_mlflow_model(
    path: Path, *, trusted_pickle: bool = False
) -> tuple[Any, Signature | None, dict[str, Any]]:
    """Load the scikit-learn model of an MLflow model folder.

    Returns ``(model, signature or None, meta)``; ``meta`` keeps MLflow's
    provenance (``mlflow_version``, ``run_id``, ``model_uuid``, ...), the
    ``serialization_format``, and ``input_example`` as a DataFrame when the folder
    has one, which can serve as the ``sample`` of :func:`write_package`.
    Unknown MLmodel keys are ignored.
    """
    path = Path(path)
    mlmodel_path = path / MLMODEL_NAME
    _stays_inside(path, mlmodel_path)
    conf = _read_mlmodel(mlmodel_path)
    flavors = conf.get("flavors") or {}
    if not isinstance(flavors, dict) or "sklearn" not in flavors:
        found = sorted(flavors) if isinstance(flavors, dict) else []
        raise ManifestError(
            f"{mlmodel_path} has no sklearn flavor (found: {found or 'none'}); Shipyard "
            "imports MLflow scikit-learn models only. Export other models to ONNX."
        )
    sk = flavors["sklearn"] or {}
    fmt = str(sk.get("serialization_format", "cloudpickle"))
    model_file = _inside(path, sk.get("pickled_model"), mlmodel_path)
    if fmt == "skops":
        model = load_skops(model_file, allow_untrusted=trusted_pickle)
    elif fmt in ("pickle", "cloudpickle"):
        model = pickle_load(model_file, trusted_pickle=trusted_pickle, what="This MLflow model")
    else:
        raise ManifestError(
            f"{mlmodel_path}: unknown sklearn serialization_format {fmt!r}; expected "
            "'skops', 'pickle' or 'cloudpickle'."
        )
    meta: dict[str, Any] = {k: conf[k] for k in _META_KEYS if k in conf}
    meta.update(flavor="sklearn", serialization_format=fmt)
    if "sklearn_version" in sk:
        meta["sklearn_version"] = str(sk["sklearn_version"])
    pyfunc = flavors.get("python_function") or {}
    if isinstance(pyfunc, dict) and "python_version" in pyfunc:
        meta["python_version"] = str(pyfunc["python_version"])
    example = _input_example(path, conf)
    if example is not None:
        meta["input_example"] = example
    signature = _signature(conf.get("signature"), model, mlmodel_path)
    return model, signature, meta


def _read_mlmodel(mlmodel_path: Path) -> dict[str, Any]:
    try:
        text = mlmodel_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError(
            f"No MLmodel file at {mlmodel_path}: point at the MLflow model folder (the one "
            "holding MLmodel, e.g. mlruns/<exp>/<run>/artifacts/model)."
        ) from exc
    try:
        conf = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{mlmodel_path} is not valid YAML: {exc}") from exc
    if not isinstance(conf, dict):
        raise ManifestError(f"{mlmodel_path} must hold a YAML mapping.")
    return conf


def _inside(root: Path, rel: Any, mlmodel_path: Path) -> Path:
    """``root / rel`` for a relative path that stays inside ``root``."""
    if not isinstance(rel, str) or not rel:
        raise ManifestError(f"{mlmodel_path}: flavors.sklearn.pickled_model is missing.")
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ManifestError(f"{mlmodel_path}: model path {rel!r} points outside the folder.")
    file = root / p
    _stays_inside(root, file)
    if not file.is_file():
        raise ManifestError(f"{mlmodel_path} names {rel!r}, but {file} does not exist.")
    return file


def _stays_inside(root: Path, file: Path) -> None:
    """Refuse ``file`` if a symbolic link on its way (itself or a folder) leaves ``root``.

    A model folder, like a Shipyard package, must hold its own bytes: a link out of
    it would import whatever file it points at (another user's model, a secret read
    as an input example) under the folder's name.
    """
    inside = root.resolve()
    target = file.resolve()
    if not target.is_relative_to(inside):
        raise ManifestError(
            f"{file} is a symbolic link (or lies under one) that leads out of the model folder "
            f"{root}, to {target}; copy the file into the folder instead of linking to it."
        )


def _input_example(root: Path, conf: dict[str, Any]) -> pd.DataFrame | None:
    info = conf.get("saved_input_example_info")
    if not isinstance(info, dict) or info.get("type") != "dataframe":
        return None
    rel = info.get("artifact_path")
    if isinstance(rel, str) and rel:
        _stays_inside(root, root / rel)  # a link out is refused, never silently skipped
    try:
        file = _inside(root, rel, root / MLMODEL_NAME)
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ManifestError, ValueError, OSError):
        return None  # an example is a convenience; its absence is not an error
    data = data.get("dataframe_split", data) if isinstance(data, dict) else data
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return pd.DataFrame(data["data"], columns=data["columns"])
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return pd.DataFrame(data)
    return None


def _parse_schema(raw: Any, what: str, mlmodel_path: Path) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{mlmodel_path}: signature.{what} is not JSON: {exc}") from exc
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ManifestError(f"{mlmodel_path}: signature.{what} must be a JSON list of objects.")
    return specs


def _signature(raw: Any, model: Any, mlmodel_path: Path) -> Signature | None:
    if not isinstance(raw, dict):
        return None
    inputs = _parse_schema(raw.get("inputs"), "inputs", mlmodel_path)
    if not inputs or any(s.get("type") == "tensor" or not s.get("name") for s in inputs):
        return None  # tensor or unnamed columns: nothing to check records against
    columns = []
    for spec in inputs:
        dtype = _TYPES.get(str(spec.get("type")))
        if dtype is None:
            raise ManifestError(
                f"{mlmodel_path}: input {spec['name']!r} has MLflow type {spec.get('type')!r}, "
                f"which Shipyard cannot check; supported: {sorted(_TYPES)}."
            )
        # MLflow's "required: false" column may be left out; the closest Shipyard rule
        # is a column that may hold missing values.
        nullable = not spec.get("required", True)
        columns.append(ColumnSpec(spec["name"], cast(DType, dtype), nullable=nullable))
    outputs = _parse_schema(raw.get("outputs"), "outputs", mlmodel_path) or []
    out_type = _TYPES.get(str(outputs[0].get("type"))) if outputs else None
    classes = getattr(model, "classes_", None)
    if classes is not None:
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in np.asarray(classes))
        kind = np.asarray(classes).dtype.kind
        dtype = {"i": "integer", "u": "integer", "b": "boolean", "f": "float"}.get(kind, "string")
        output = OutputSpec("classification", cast(DType, dtype), classes=values)
    elif out_type == "float":
        output = OutputSpec("regression", "float")
    else:
        output = OutputSpec("other", cast(DType, out_type or "float"))
    try:
        return Signature(tuple(columns), output)
    except InvalidInputError as exc:
        raise ManifestError(f"{mlmodel_path}: unusable signature: {exc}") from exc


__all__ = ["MLMODEL_NAME", "read_mlflow_model"]
