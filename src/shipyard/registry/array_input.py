"""Score a scikit-learn model fitted on a DataFrame from a float matrix, as if fitted on arrays.

scikit-learn remembers the column names a model was fitted on and checks them
on every call, so a served model fitted on a DataFrame (what most users do)
needs a DataFrame per request. Building a one-row DataFrame and having its
names checked cost ~0.7 ms per request here, six times a logistic
regression's own work. The signature has already checked every value and put
the columns in the fitted order, so the names tell the model nothing new.

:func:`array_input_model` gives the served model a copy of the estimator
without its remembered names (the estimator itself, or a ``Pipeline``'s first
step), fed the validated float matrix. It is used only when it is provably the
same computation: the signature's columns are the fitted names in the same
order, all numeric; no step outputs pandas frames; and, on rows drawn from the
training ranges, the copy answers exactly (bit for bit) what the original
answers on a DataFrame, without any warning. Anything else keeps the DataFrame
path.

Example:
    >>> fast = array_input_model(registry.load("iris:3"))   # doctest: +SKIP
    >>> fast.prepare({"sepal_length": 5.1, ...}).dtype       # doctest: +SKIP
    dtype('float64')
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import numpy as np

from shipyard.registry.flavors.base import EstimatorPredictor
from shipyard.registry.model import LoadedModel
from shipyard.registry.optimize import ConversionError, reference_sample

logger = logging.getLogger("shipyard.registry")

#: Rows drawn from the training ranges on which the copy must answer like the original.
CHECK_ROWS = 64


def _without_feature_names(estimator: Any) -> Any | None:
    """A shallow copy of ``estimator`` that no longer checks input names, or None.

    Only the object that receives the raw input checks names: the estimator, or a
    ``Pipeline``'s first step (later steps get the previous step's arrays). A
    ``ColumnTransformer`` selects its columns by name, and a step set to output
    pandas frames hands names on: both keep the DataFrame path.
    """
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        if type(estimator).__name__ != "Pipeline" or any(
            getattr(step, "_sklearn_output_config", None) for _, step in steps
        ):
            return None
        first = _without_feature_names(steps[0][1])
        if first is None:
            return None
        pipeline = copy.copy(estimator)
        pipeline.steps = [(steps[0][0], first), *steps[1:]]
        return pipeline
    if type(estimator).__name__ == "ColumnTransformer" or getattr(
        estimator, "_sklearn_output_config", None
    ):
        return None
    if "feature_names_in_" not in vars(estimator):
        return None
    stripped = copy.copy(estimator)  # shares the fitted arrays; only the names go
    del stripped.feature_names_in_
    return stripped


def _same_answers(original: LoadedModel, candidate: LoadedModel) -> bool:
    """Whether ``candidate`` answers exactly as ``original`` on rows of the training ranges."""
    try:
        sample = reference_sample(original.signature, rows=CHECK_ROWS)
    except ConversionError:
        return False
    # A warning ("X does not have valid feature names") means not the same. Warnings are
    # recorded, not raised: the filters are process-wide, and an "error" filter would turn
    # another thread's warning (a request served during a hot swap) into an exception.
    # A warning from elsewhere only makes this check keep the DataFrame path: safe.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            want = original.score(original.prepare(sample))
            got = candidate.score(candidate.prepare(sample))
        except Exception as exc:  # any difference in behaviour keeps the DataFrame path
            logger.info("%s keeps DataFrame input: %s", original.ref, exc)
            return False
    if caught:
        logger.info("%s keeps DataFrame input: %s", original.ref, caught[0].message)
        return False
    labels_equal = np.array_equal(want[0], got[0])
    proba_equal = (want[1] is None and got[1] is None) or (
        want[1] is not None and got[1] is not None and np.array_equal(want[1], got[1])
    )
    return labels_equal and proba_equal


def array_input_model(model: LoadedModel) -> LoadedModel:
    """``model`` scoring float matrices when that is exactly the same (see the module doc).

    Returns ``model`` itself when it takes matrices already, is not a scikit-learn
    model fitted on the signature's numeric columns, or the copy does not answer the
    same.
    """
    predictor = model.predictor
    if model.takes_array or model.flavor != "sklearn" or not model.signature.is_numeric:
        return model
    if not isinstance(predictor, EstimatorPredictor):
        return model
    if predictor.feature_names != model.signature.names:
        return model
    stripped = _without_feature_names(predictor.model)
    if stripped is None:
        return model
    fast = EstimatorPredictor(
        stripped,
        classes=predictor.classes,
        feature_names=predictor.feature_names,
        accepts_array=True,
    )
    candidate = LoadedModel(model.manifest, fast)
    if not _same_answers(model, candidate):
        return model
    return candidate


__all__ = ["CHECK_ROWS", "array_input_model"]
