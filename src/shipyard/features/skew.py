"""Training/serving skew: the feature values a model was served, against the values a
point-in-time training set gives for the same keys at the same times.

The prediction log of a feature-backed model keeps, per request row, the entity
keys and the feature values used (see :mod:`shipyard.features.serving`). The
training set is rebuilt offline for those keys at those request times; then
every feature is tested with the drift report's tests (the offline values as
the reference, the served ones as the current data), and the share of rows
whose two values are equal is counted. Materialization that lags behind the
source, a changed source, or a function that differs between training and
serving all show up here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shipyard.drift.compare import compare
from shipyard.drift.result import DriftResult
from shipyard.errors import InvalidInputError
from shipyard.features.service import FeatureService, FeatureSet

__all__ = ["SkewReport", "feature_skew"]

INPUT_PREFIX = "in_"  # the prediction log's prefix of input columns


@dataclass(frozen=True)
class SkewReport:
    """Per feature: the drift test of served against offline values, and the equal share."""

    rows: int
    drift: DriftResult
    equal_share: dict[str, float]

    @property
    def skewed(self) -> bool:
        return self.drift.dataset_drift or any(s < 1.0 for s in self.equal_share.values())


def feature_skew(
    service: FeatureService,
    logged: pd.DataFrame,
    spec: FeatureSet,
    *,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    stattest: str | None = None,
    threshold: float | None = None,
) -> SkewReport:
    """Compare the served feature values in ``logged`` (a prediction-log window) with a
    point-in-time training set rebuilt for the same keys and times."""
    keys = [f"{INPUT_PREFIX}{k}" for k in spec.join_keys]
    absent = [k for k in keys if k not in logged.columns]
    if logged.empty or absent:
        raise InvalidInputError(
            "The prediction log holds no served rows with entity keys in this window: serve "
            "the model (keys are logged with the features) or widen --window."
        )
    entities = pd.DataFrame({k: logged[f"{INPUT_PREFIX}{k}"].to_numpy() for k in spec.join_keys})
    entities["event_timestamp"] = pd.to_datetime(logged["timestamp"], utc=True).to_numpy()
    for field in spec.request_fields:
        if f"{INPUT_PREFIX}{field}" in logged.columns:
            entities[field] = logged[f"{INPUT_PREFIX}{field}"].to_numpy()
    # On-demand features need their request fields; without them only stored ones compare.
    refs = [
        r
        for r in spec.refs
        if r.partition(":")[0] in _stored_views(service, spec)
        or all(f in entities.columns for f in spec.request_fields)
    ]
    offline = service.training_set(
        entities, refs, full_feature_names=spec.full_feature_names, record=False
    )
    columns = [
        c
        for c in offline.columns
        if c not in entities.columns and f"{INPUT_PREFIX}{c}" in logged.columns
    ]
    if not columns:
        raise InvalidInputError("None of the model's features are in the prediction log.")
    served = pd.DataFrame({c: logged[f"{INPUT_PREFIX}{c}"].to_numpy() for c in columns}).astype(
        "float64", errors="ignore"
    )
    reference = offline[columns].reset_index(drop=True).astype("float64", errors="ignore")
    result = compare(
        reference, served, stattest=stattest, threshold=threshold, html=html, json_path=json_path
    )
    equal = {c: _equal_share(reference[c], served[c]) for c in columns}
    return SkewReport(len(served), result, equal)


def _stored_views(service: FeatureService, spec: FeatureSet) -> set[str]:
    catalog = service.catalog()
    return {v for v in spec.views if v in catalog.views}


def _equal_share(offline: pd.Series, online: pd.Series) -> float:
    """Share of rows whose two values agree (both null counts as agreeing)."""
    a = pd.to_numeric(offline, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    b = pd.to_numeric(online, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    same = np.isclose(a, b, rtol=1e-6, atol=0.0, equal_nan=True)
    return float(same.mean()) if len(same) else 1.0
