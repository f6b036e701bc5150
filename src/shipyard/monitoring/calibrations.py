"""The CBPE calibration of each version, fitted on labelled reference data and stored with it.

Fitted once, from the model gates' holdout (``shipyard validate model``) or a
labelled file (``shipyard monitor estimate REF --reference FILE --target COL``),
kept in the artifact store (content-addressed, checksummed) and named by a tag
of the version, like the drift reference. The monitor job, ``shipyard monitor
performance``, ``monitor estimate`` and the rollout guards read it from here,
so every estimate of a version goes through the same calibration.

>>> calibrations = Calibrations(models, artifacts)                       # doctest: +SKIP
>>> model = client.registry.load(version.ref)                             # doctest: +SKIP
>>> calibrations.fit(version, model, holdout, "species")                  # doctest: +SKIP
>>> calibrations.load(version).classes                                   # doctest: +SKIP
('setosa', 'versicolor', 'virginica')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import ArtifactNotFoundError, IntegrityError, InvalidInputError
from shipyard.monitoring.calibration import Calibration, fit_calibration
from shipyard.monitoring.records import class_key
from shipyard.store import records
from shipyard.store.artifacts import ArtifactStore
from shipyard.store.model_store import ModelStore

__all__ = ["CALIBRATION_TAG", "Calibrations", "reference_calibration"]

#: Version tag holding the artifact digest of the version's CBPE calibration.
CALIBRATION_TAG = "cbpe_calibration"


class Calibrations:
    """Fit, store and read the per-class calibration of a version's probabilities."""

    def __init__(self, models: ModelStore, artifacts: ArtifactStore) -> None:
        self.models = models
        self.artifacts = artifacts
        self._cache: dict[str, Calibration] = {}

    def attach(self, version: records.ModelVersion, calibration: Calibration) -> None:
        """Store ``calibration`` as ``version``'s (replacing any earlier one)."""
        digest = self.artifacts.put_bytes(calibration.to_bytes())
        self.models.set_version_tags(version.model, version.version, {CALIBRATION_TAG: digest})

    def fit(
        self, version: records.ModelVersion, model: Any, data: pd.DataFrame, target: str
    ) -> Calibration:
        """Fit on ``data`` (inputs and the ``target`` column) with ``model``; store it."""
        calibration = reference_calibration(model, data, target, name=version.ref)
        self.attach(version, calibration)
        return calibration

    def fit_on_holdout(
        self, version: records.ModelVersion, model: Any, holdout: pd.DataFrame, target: str
    ) -> str | None:
        """Fit and store the calibration on the model gates' labelled holdout; a line
        saying what was done, or None for a model without class probabilities.

        Too few usable rows is said, not raised: the gates' verdict stands.
        """
        if model.classes is None or not model.has_proba:
            return None
        try:
            fitted = self.fit(version, model, holdout, target)
        except InvalidInputError as exc:
            return f"CBPE calibration not fitted: {exc}"
        mapped = sum(m is not None for m in fitted.maps)
        return (
            f"CBPE calibration fitted on the holdout ({fitted.rows} labelled rows, {mapped} "
            f"class map(s)) and stored with {version.ref}: its performance estimates are "
            "calibrated from now on."
        )

    def load(self, version: records.ModelVersion) -> Calibration | None:
        """``version``'s stored calibration, or None if it has none."""
        digest = version.tags.get(CALIBRATION_TAG)
        if digest is None:
            return None
        if digest not in self._cache:  # content-addressed: a digest never changes meaning
            try:
                data = self.artifacts.get_bytes(digest)
            except (ArtifactNotFoundError, IntegrityError) as exc:
                raise type(exc)(
                    f"Cannot read the CBPE calibration stored with {version.ref}. {exc}"
                ) from exc
            self._cache[digest] = Calibration.from_bytes(data)
        return self._cache[digest]

    def latest(self, model: str, version: int) -> Calibration | None:
        """The stored calibration of ``model`` ``version`` as tagged now (tags may move)."""
        return self.load(self.models.get_version(model, version))


def reference_calibration(model: Any, data: pd.DataFrame, target: str, *, name: str) -> Calibration:
    """Fit a calibration of ``model`` (a loaded classifier) on labelled ``data``."""
    if target not in data.columns:
        raise InvalidInputError(
            f"The reference data has no target column {target!r}; its columns are "
            f"{list(data.columns)}. Name it with --target."
        )
    if model.classes is None or not model.has_proba:
        raise InvalidInputError(
            f"{name} gives no class probabilities, so its performance cannot be estimated "
            "(CBPE needs a classifier with predict_proba)."
        )
    labelled = data[data[target].notna()]
    proba = np.asarray(model.predict_proba(labelled.drop(columns=[target])), dtype=np.float64)
    keys = [class_key(c) or "" for c in model.classes]
    index = {k: j for j, k in enumerate(keys)}
    y = np.array([index.get(class_key(v) or "", -1) for v in labelled[target].tolist()])
    return fit_calibration(proba, y, classes=keys)
