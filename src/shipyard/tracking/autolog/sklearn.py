"""Autologging for scikit-learn estimators, pipelines and searches.

Every estimator class's ``fit`` is wrapped. The outermost fit logs, into the
active run or a run of its own:

- params: ``get_params(deep=True)`` (nested estimators by class name);
- training scores on the fitted data: ``training_score`` plus, for
  classifiers, accuracy, precision, recall and F1 (weighted), log loss and
  ROC AUC when there are probabilities; for regressors MSE, RMSE, MAE, R²;
- the signature (``model/signature.json``) and the model itself
  (``model/model.skops``, a format that loads without running code);
- a registered version when ``register_as`` was given.

A later ``model.score(X_val, y_val)`` logs ``validation_score`` to the run
the model was fitted in (step 0, 1, ... for each call). A ``GridSearchCV`` or
``RandomizedSearchCV`` logs the search into the parent run (its settings, the
best candidate's params as ``best_<param>``, ``best_cv_score``, the best
estimator's training scores and model) and one child run per candidate with
its params and cross-validation figures. Inner fits are not logged again.
"""

from __future__ import annotations

import weakref
from typing import Any

from shipyard.tracking.autolog import _core
from shipyard.tracking.runs import ActiveRun

# The run each autologged model was fitted in, so a later ``score`` finds it.
_MODEL_RUNS: weakref.WeakKeyDictionary[Any, tuple[ActiveRun, list[int]]] = (
    weakref.WeakKeyDictionary()
)


def enable() -> None:
    from sklearn.base import ClassifierMixin, RegressorMixin
    from sklearn.utils import all_estimators

    classes = [cls for _, cls in all_estimators()]
    for cls in classes:
        if callable(getattr(cls, "fit", None)):
            _core.patch(cls, "fit", _fit_wrapper)
    for owner in (ClassifierMixin, RegressorMixin):
        _core.patch(owner, "score", _score_wrapper)
    for cls in classes:
        if "score" in cls.__dict__:
            _core.patch(cls, "score", _score_wrapper)


def _split_xy(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    return X, y


def _fit_wrapper(original: Any) -> Any:
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _core.enabled() or _core.DEPTH.get() > 0:
            return original(self, *args, **kwargs)
        with _core.nested_call(), _core.autolog_run(type(self).__name__) as run:
            _core.safely("log params", lambda: _core.log_params(run, _params(self)))
            result = original(self, *args, **kwargs)
            X, y = _split_xy(args, kwargs)
            log_fitted(run, self, X, y)
            return result

    return fit


def _params(model: Any) -> dict[str, Any]:
    from sklearn.model_selection._search import BaseSearchCV

    if isinstance(model, BaseSearchCV):
        params = model.get_params(deep=False)
        grid = getattr(model, "param_grid", None) or getattr(model, "param_distributions", None)
        params["estimator"] = model.estimator
        params.pop("param_grid", None)
        params.pop("param_distributions", None)
        if grid is not None:
            params["search_space"] = grid
        return params
    return dict(model.get_params(deep=True))


def log_fitted(run: ActiveRun, model: Any, X: Any, y: Any) -> None:
    """Everything logged after a successful outermost fit (see module doc)."""
    from sklearn.model_selection._search import BaseSearchCV

    cfg = _core.config()
    estimator = model
    if isinstance(model, BaseSearchCV):
        _core.safely("log the search candidates", lambda: _log_search(run, model))
        estimator = getattr(model, "best_estimator_", None)
    if estimator is not None and y is not None:
        scores = _core.safely("compute training scores", lambda: training_scores(estimator, X, y))
        if scores:
            run.log_metrics(scores)
    # A search keeps (and registers) its best estimator, refitted on all the data.
    kept = estimator if estimator is not None else model
    _core.safely("log the signature", lambda: _log_signature(run, kept, X))
    if cfg.log_models:
        _core.safely("log the model", lambda: log_model_artifact(run, kept))
    register = cfg.hooks.register
    if cfg.register_as and register is not None:
        name = cfg.register_as
        _core.safely(f"register the model as {name!r}", lambda: register(kept, name, X))
    _MODEL_RUNS[model] = (run, [0])


def _log_signature(run: ActiveRun, model: Any, X: Any) -> None:
    hooks = _core.config().hooks
    if hooks.signature is None or X is None:
        return
    run.log_dict(hooks.signature(model, X), "model/signature.json")


def log_model_artifact(run: ActiveRun, model: Any) -> None:
    data, name = model_bytes(model)
    run.artifacts.log_bytes(data, f"model/{name}", kind="model")
    run.set_tag("model_class", f"{type(model).__module__}.{type(model).__qualname__}")


def model_bytes(model: Any) -> tuple[bytes, str]:
    """The model in a format that loads without running code, and its file name."""
    booster = _booster_bytes(model)
    if booster is not None:
        return booster
    import skops.io

    return skops.io.dumps(model), "model.skops"


def _booster_bytes(model: Any) -> tuple[bytes, str] | None:
    module = type(model).__module__
    if module.startswith("xgboost"):
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        return bytes(booster.save_raw("json")), "model.xgb.json"
    if module.startswith("lightgbm"):
        booster = getattr(model, "booster_", model)
        return booster.model_to_string().encode(), "model.lgb.txt"
    return None


def training_scores(model: Any, X: Any, y: Any) -> dict[str, float]:
    """Scores of ``model`` on the data it was fitted on, by kind of estimator."""
    import numpy as np
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    out: dict[str, float] = {}
    with _core.nested_call():  # score/predict must not log again
        if hasattr(model, "score"):
            out["training_score"] = float(model.score(X, y))
        if is_classifier(model):
            predicted = model.predict(X)
            out["training_accuracy_score"] = metrics.accuracy_score(y, predicted)
            for name, fn in (
                ("precision", metrics.precision_score),
                ("recall", metrics.recall_score),
                ("f1", metrics.f1_score),
            ):
                out[f"training_{name}_score"] = float(
                    fn(y, predicted, average="weighted", zero_division=0)
                )
            if hasattr(model, "predict_proba"):
                proba = model.predict_proba(X)
                out["training_log_loss"] = metrics.log_loss(y, proba, labels=model.classes_)
                if len(model.classes_) == 2:
                    out["training_roc_auc"] = metrics.roc_auc_score(y, proba[:, 1])
                elif len(np.unique(y)) == len(model.classes_):
                    out["training_roc_auc"] = metrics.roc_auc_score(
                        y, proba, multi_class="ovr", labels=model.classes_
                    )
        elif is_regressor(model):
            predicted = model.predict(X)
            mse = metrics.mean_squared_error(y, predicted)
            out["training_mean_squared_error"] = mse
            out["training_root_mean_squared_error"] = float(np.sqrt(mse))
            out["training_mean_absolute_error"] = metrics.mean_absolute_error(y, predicted)
            out["training_r2_score"] = metrics.r2_score(y, predicted)
    return {k: float(v) for k, v in out.items()}


def _log_search(run: ActiveRun, search: Any) -> None:
    cfg = _core.config()
    best = getattr(search, "best_params_", None)
    if best:
        _core.log_params(run, {f"best_{k}": v for k, v in best.items()})
    if getattr(search, "best_score_", None) is not None:
        run.log_metric("best_cv_score", float(search.best_score_))
    results = search.cv_results_
    candidates = results["params"]
    run.set_tag("autolog.candidates", str(len(candidates)))
    base = {k: v for k, v in search.estimator.get_params(deep=False).items()}
    figures = [
        k
        for k in results
        if k.startswith(("mean_", "std_", "rank_")) and not k.startswith("mean_train_")
    ] + [k for k in results if k.startswith("mean_train_")]
    for i, params in enumerate(candidates[: cfg.max_candidates]):
        with cfg.tracker.start_run(parent=run, name=f"candidate-{i}") as child:
            _core.log_params(child, {**base, **params})
            child.log_metrics({k: float(results[k][i]) for k in figures if _finite(results[k][i])})
            if i == getattr(search, "best_index_", -1):
                child.set_tag("autolog.best", "true")
    if len(candidates) > cfg.max_candidates:
        run.set_tag("autolog.candidates_logged", str(cfg.max_candidates))


def _finite(value: Any) -> bool:
    import math

    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _score_wrapper(original: Any) -> Any:
    def score(self: Any, *args: Any, **kwargs: Any) -> Any:
        outermost = _core.enabled() and _core.DEPTH.get() == 0
        with _core.nested_call():  # a score calling a parent's score logs once
            result = original(self, *args, **kwargs)
        if not outermost:
            return result
        entry = _MODEL_RUNS.get(self)
        if entry is not None and _finite(result):
            run, calls = entry
            _core.safely(
                "log the validation score",
                lambda: run.log_metric("validation_score", float(result), step=calls[0]),
            )
            calls[0] += 1
        return result

    return score
