"""``shipyard monitor estimate``: a version's estimated performance on a file of inputs.

Reads the tables, runs the model, and hands its outputs to :mod:`.estimate`:
CBPE through the version's stored calibration for a classifier (fitting and
storing one first when a labelled ``reference`` is given), direct loss
estimation for a regressor (which needs the labelled reference every time).

>>> result = estimate_file(registry, calibrations, "iris:3", current="today.csv",
...                        reference=None, target=None, chunk_size=500)   # doctest: +SKIP
>>> result.chunks[0].to_dict()["calibrated"]                               # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError, SchemaError
from shipyard.monitoring.calibration import Calibration
from shipyard.monitoring.calibrations import Calibrations
from shipyard.monitoring.estimate import ChunkEstimate, DirectLossEstimator, estimate_classifier
from shipyard.monitoring.records import class_key
from shipyard.registry.service import Registry
from shipyard.tables import read_table

__all__ = ["EstimateResult", "estimate_file", "predicted_columns"]


@dataclass(frozen=True)
class EstimateResult:
    ref: str
    method: str
    metrics: tuple[str, ...]
    chunks: list[ChunkEstimate]
    notes: tuple[str, ...]


def estimate_file(
    registry: Registry,
    calibrations: Calibrations,
    ref: str,
    *,
    current: str,
    reference: str | None,
    target: str | None,
    chunk_size: int,
    storage_options: dict[str, Any] | None = None,
) -> EstimateResult:
    """Estimates per ``chunk_size`` rows of the table ``current`` (see the module doc)."""
    version = registry.resolve(ref)
    model = registry.load(version.ref)
    # The model's text columns stay text in CSV and JSON (a zip code "02139" is not
    # the number 2139), as the signature expects them.
    text = [c.name for c in model.signature.inputs if c.dtype == "string"]
    inputs = _inputs(
        read_table(current, storage_options=storage_options, text_columns=text), target
    )
    if not len(inputs):
        raise InvalidInputError(f"The table {current} has no rows to estimate on.")
    labelled = None
    if reference is not None and target is not None:
        labelled = read_table(
            reference,
            storage_options=storage_options,
            text_columns=[c for c in text if c != target],
        )
        if target not in labelled.columns:
            raise InvalidInputError(
                f"The reference table {reference} has no target column {target!r}; its "
                f"columns are {list(labelled.columns)}."
            )
    if model.classes is None:
        tables = (current, reference or "")
        return _regression(version.ref, model, inputs, labelled, target, chunk_size, tables)
    if not model.has_proba:
        raise InvalidInputError(
            f"{version.ref} gives no class probabilities, so its performance cannot be "
            "estimated without labels (CBPE reads the probabilities)."
        )
    notes = []
    calibration: Calibration | None
    if labelled is not None and target is not None:
        calibration = calibrations.fit(version, model, labelled, target)
        notes.append(
            f"Calibration fitted on {calibration.rows} labelled rows of {reference} and "
            f"stored with {version.ref}: later estimates (and the monitor job's) use it."
        )
    else:
        calibration = calibrations.load(version)
        if calibration is None:
            notes.append(
                f"{version.ref} has no calibration: the estimates read its raw probabilities. "
                "Fit one once with --reference FILE --target COL (or `shipyard validate "
                "model`, which fits it on the holdout)."
            )
    labels, proba = model.predict_with_proba(inputs)
    assert proba is not None  # has_proba
    proba, predicted = predicted_columns(
        np.asarray(proba), labels, model.classes, calibration.classes if calibration else None
    )
    chunks = estimate_classifier(proba, predicted, chunk_size=chunk_size, calibration=calibration)
    notes.append("Bands: the estimate plus or minus three standard deviations.")
    method = "CBPE, calibrated" if calibration is not None else "CBPE, raw probabilities"
    return EstimateResult(
        version.ref, method, ("accuracy", "f1_macro", "roc_auc"), chunks, tuple(notes)
    )


def predicted_columns(
    proba: np.ndarray, labels: np.ndarray, classes: Any, order: tuple[str, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities in ``order`` (the calibration's; default the model's), and the
    column index of each predicted label (-1 when it is not among the classes)."""
    keys = [class_key(c) or "" for c in classes]
    if order is not None:
        proba = proba[:, [keys.index(c) for c in order]]
        keys = list(order)
    index = {k: j for j, k in enumerate(keys)}
    predicted = np.array([index.get(class_key(v) or "", -1) for v in labels], dtype=np.int64)
    return proba, predicted


def _inputs(frame: pd.DataFrame, target: str | None) -> pd.DataFrame:
    return frame.drop(columns=[target]) if target is not None and target in frame else frame


def _regression(
    ref: str,
    model: Any,
    inputs: pd.DataFrame,
    labelled: pd.DataFrame | None,
    target: str | None,
    chunk_size: int,
    tables: tuple[str, str],
) -> EstimateResult:
    if labelled is None or target is None:
        raise InvalidInputError(
            f"{ref} is a regressor: its MAE and RMSE are estimated by direct loss estimation, "
            "which learns the error on labelled data. Pass --reference FILE --target COL."
        )
    # The loss models learn from the model's own input columns only, checked and typed
    # by its signature: an id or a date the model never reads cannot explain its error.
    reference_inputs = _model_columns(model, _inputs(labelled, target), tables[1])
    current_inputs = _model_columns(model, inputs, tables[0])
    dle = DirectLossEstimator().fit(
        reference_inputs, model.predict(reference_inputs), labelled[target].to_numpy()
    )
    chunks = dle.estimate(current_inputs, model.predict(current_inputs), chunk_size=chunk_size)
    notes = (
        "Direct loss estimation: boosted-tree models of the absolute and squared error, "
        "fitted on the reference for this run (not stored); no band is given. Features: "
        "the model's input columns and its prediction.",
    )
    return EstimateResult(ref, "direct loss estimation", ("mae", "rmse"), chunks, notes)


def _model_columns(model: Any, frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """``frame``'s columns the model reads, as its signature types them; an error names
    the table as well as the column."""
    try:
        return pd.DataFrame(model.signature.coerce(frame))
    except SchemaError as exc:
        raise SchemaError(
            f"{table}: {exc}", field=exc.field, expected=exc.expected, rows=exc.rows
        ) from exc
