"""Prune a model to the smallest form that still passes its gates.

Tree ensembles keep their first ``k`` trees (boosting rounds for gradient
boosting, XGBoost and LightGBM: later rounds only correct earlier ones, so a
prefix is a complete model; any subset of a forest is a forest). MLPs lose whole
hidden neurons, smallest weight magnitude first (the L1 norm of a neuron's
incoming and outgoing weights): structured magnitude pruning, which shrinks the
matrices themselves, so size and latency both fall (zeroing single weights would
leave a dense matrix of the same size).

:func:`pruning_plan` says how a model can be pruned; :func:`smallest_passing`
searches the fewest trees (the fewest neurons) whose candidate passes a check,
by bisection over the level (more trees never make a forest less like itself).

Example:
    >>> plan = pruning_plan(loaded.predictor)                 # doctest: +SKIP
    >>> level = smallest_passing(plan, passes)                # doctest: +SKIP
    >>> plan.describe(level)                                  # doctest: +SKIP
    '60 of 300 trees'
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError
from shipyard.registry.flavors.base import EstimatorPredictor

#: MLP pruning levels: keep level/MLP_STEPS of each hidden layer's neurons.
MLP_STEPS = 20
_FORESTS = ("RandomForest", "ExtraTrees")
_BOOSTING = ("GradientBoosting",)


@dataclass
class PruningPlan:
    """How to make the model at pruning ``level`` (1..``levels``; ``levels`` = unpruned).

    ``model(level)`` is the object to register, ``predictor(level)`` the same model
    behind the flavor's predictor (to gate it in memory before registering).
    """

    kind: str
    levels: int
    model: Callable[[int], Any]
    predictor: Callable[[int], Any]
    describe: Callable[[int], str]


def _article(word: str) -> str:
    """ "a" or "an" before a flavor name, by its sound (an onnx, an xgboost, a lightgbm)."""
    return "an" if word[:1].lower() in "aeiox" else "a"


def pruning_plan(predictor: Any, flavor: str) -> PruningPlan:
    """The pruning plan for a loaded model's predictor; InvalidInputError if none fits."""
    if flavor == "lightgbm":
        return _lightgbm_plan(predictor)
    model = getattr(predictor, "model", None)
    if model is None:
        raise InvalidInputError(
            f"{_article(flavor)} {flavor} model without its estimator cannot be pruned "
            "(a raw booster, ONNX)"
        )
    if flavor == "xgboost":
        return _xgboost_plan(predictor, model)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    name = type(final).__name__
    if name.startswith(_FORESTS + _BOOSTING):
        return _sklearn_trees_plan(model, final)
    if name.startswith("MLP"):
        return _mlp_plan(model, final)
    raise InvalidInputError(
        f"{name} cannot be pruned: --prune takes random forests, extra trees, gradient "
        "boosting, XGBoost, LightGBM and MLPs; try --distill or --quantize"
    )


def smallest_passing(plan: PruningPlan, passes: Callable[[int], bool]) -> int:
    """The lowest level in 1..levels that passes, assuming passing is monotone in level.

    The unpruned model (``levels``) is taken to pass: it is the source itself.
    """
    low, high = 1, plan.levels  # invariant: high passes
    while low < high:
        mid = (low + high) // 2
        if passes(mid):
            high = mid
        else:
            low = mid + 1
    return high


# -- scikit-learn --------------------------------------------------------------------------


def _with_final(model: Any, final: Any) -> Any:
    """``model`` with its last step replaced (or ``final`` itself for a bare estimator)."""
    if not hasattr(model, "steps"):
        return final
    pipeline = copy.copy(model)
    pipeline.steps = [*model.steps[:-1], (model.steps[-1][0], final)]
    return pipeline


def _sklearn_trees_plan(model: Any, final: Any) -> PruningPlan:
    total = len(final.estimators_)
    boosting = type(final).__name__.startswith(_BOOSTING)

    def build(level: int) -> Any:
        pruned = copy.copy(final)
        pruned.estimators_ = final.estimators_[:level]
        pruned.n_estimators = level
        if boosting:
            pruned.train_score_ = final.train_score_[:level]
            if hasattr(final, "n_estimators_"):
                pruned.n_estimators_ = level
            if getattr(final, "oob_improvement_", None) is not None:
                pruned.oob_improvement_ = final.oob_improvement_[:level]
                pruned.oob_scores_ = final.oob_scores_[:level]
        return _with_final(model, pruned)

    unit = "boosting stages" if boosting else "trees"
    return PruningPlan(
        kind="trees",
        levels=total,
        model=build,
        predictor=lambda level: EstimatorPredictor(build(level)),
        describe=lambda level: f"{level} of {total} {unit}",
    )


def _mlp_plan(model: Any, final: Any) -> PruningPlan:
    sizes = [c.shape[1] for c in final.coefs_[:-1]]
    if not sizes:
        raise InvalidInputError("this MLP has no hidden layer to prune")

    def build(level: int) -> Any:
        pruned = copy.deepcopy(final)
        coefs = [c.copy() for c in final.coefs_]
        intercepts = [b.copy() for b in final.intercepts_]
        kept_sizes = []
        for layer in range(len(sizes)):
            keep_n = max(1, math.ceil(sizes[layer] * level / MLP_STEPS))
            # A neuron's magnitude: the weights into it and out of it.
            magnitude = np.abs(coefs[layer]).sum(axis=0) + np.abs(coefs[layer + 1]).sum(axis=1)
            keep = np.sort(np.argsort(-magnitude, kind="stable")[:keep_n])
            coefs[layer] = coefs[layer][:, keep]
            intercepts[layer] = intercepts[layer][keep]
            coefs[layer + 1] = coefs[layer + 1][keep, :]
            kept_sizes.append(keep_n)
        pruned.coefs_ = coefs
        pruned.intercepts_ = intercepts
        pruned.hidden_layer_sizes = tuple(kept_sizes)
        return _with_final(model, pruned)

    def describe(level: int) -> str:
        kept = [max(1, math.ceil(s * level / MLP_STEPS)) for s in sizes]
        return f"hidden neurons {tuple(sizes)} -> {tuple(kept)} (smallest weight magnitude removed)"

    return PruningPlan(
        kind="neurons",
        levels=MLP_STEPS,
        model=build,
        predictor=lambda level: EstimatorPredictor(build(level)),
        describe=describe,
    )


# -- boosters ------------------------------------------------------------------------------


def _xgboost_plan(predictor: Any, model: Any) -> PruningPlan:
    booster = model.get_booster()
    total = int(booster.num_boosted_rounds())

    def build(level: int) -> Any:
        pruned = copy.deepcopy(model)
        pruned._Booster = booster[:level]  # a prefix of the boosting rounds
        pruned.set_params(n_estimators=level)
        return pruned

    def wrap(level: int) -> Any:
        pruned = build(level)
        out = EstimatorPredictor(
            pruned,
            classes=predictor.classes,
            feature_names=predictor.feature_names,
            accepts_array=True,
        )
        return out

    return PruningPlan(
        kind="trees",
        levels=total,
        model=build,
        predictor=wrap,
        describe=lambda level: f"{level} of {total} boosting rounds",
    )


def _lightgbm_plan(predictor: Any) -> PruningPlan:
    import lightgbm as lgb

    from shipyard.registry.flavors.lightgbm import LightGBMPredictor

    booster = predictor.booster
    total = int(booster.current_iteration())
    classes = None if predictor.classes is None else list(predictor.classes)

    def pruned_booster(level: int) -> Any:
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=level))

    def build(level: int) -> Any:
        pruned = pruned_booster(level)
        if classes is None:
            return pruned
        # The flavor saves a classifier's labels from the scikit-learn wrapper: give it one.
        shell = lgb.LGBMClassifier(n_estimators=level)
        shell._Booster = pruned
        shell._classes = np.asarray(classes)
        shell._n_classes = len(classes)
        shell._n_features = pruned.num_feature()
        shell.fitted_ = True
        return shell

    return PruningPlan(
        kind="trees",
        levels=total,
        model=build,
        predictor=lambda level: LightGBMPredictor(pruned_booster(level), classes=classes),
        describe=lambda level: f"{level} of {total} boosting rounds",
    )


__all__ = ["PruningPlan", "pruning_plan", "smallest_passing"]
