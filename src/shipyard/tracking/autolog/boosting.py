"""Autologging for XGBoost and LightGBM: params, eval metrics per iteration, best iteration.

``xgboost.train`` and ``lightgbm.train`` (which their scikit-learn wrappers
call too) get one more callback that logs each evaluation metric of each
evaluation set at every iteration, as stepped metrics named
``<set>-<metric>`` (``validation_0-logloss``, ``valid_0-l2``). The outermost
call logs the booster's params, ``best_iteration`` (and ``best_score``) when
early stopping found one, and the model (XGBoost JSON, LightGBM text). The
scikit-learn wrappers (``XGBClassifier``, ``LGBMRegressor``...) are also
logged like any scikit-learn estimator (training scores, signature).
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
from collections.abc import Iterator
from typing import Any

from shipyard.tracking.autolog import _core
from shipyard.tracking.autolog.sklearn import log_fitted, log_model_artifact
from shipyard.tracking.runs import ActiveRun

# Callbacks may be deep-copied by the libraries; they hold a key into this table,
# never the run itself (which holds locks and threads).
_SINKS: dict[int, ActiveRun] = {}
_KEYS = itertools.count()


def enable() -> None:
    try:
        import xgboost  # noqa: F401
    except ImportError:
        pass
    else:
        _enable_xgboost()
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        pass
    else:
        _enable_lightgbm()


# -- XGBoost --------------------------------------------------------------------------


def _enable_xgboost() -> None:
    import xgboost
    import xgboost.sklearn
    import xgboost.training

    for module in (xgboost, xgboost.training, xgboost.sklearn):
        if hasattr(module, "train"):
            _core.patch(module, "train", _train_wrapper(_xgb_callback, "callbacks", "xgboost"))
    _patch_fits(xgboost.sklearn.XGBModel)


class _XGBSink:
    """Built lazily so xgboost's TrainingCallback is imported only when xgboost is used."""

    cls: Any = None


def _xgb_callback(key: int) -> Any:
    if _XGBSink.cls is None:
        from xgboost.callback import TrainingCallback

        class ShipyardCallback(TrainingCallback):  # type: ignore[misc]
            def __init__(self, key: int) -> None:
                self.key = key

            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                run = _SINKS.get(self.key)
                if run is not None:
                    # The latest value of each metric; with cv it is a (mean, std) pair.
                    figures = {
                        f"{data}-{metric}": float(_first(values[-1]))
                        for data, by_metric in evals_log.items()
                        for metric, values in by_metric.items()
                        if values
                    }
                    if figures:
                        run.log_metrics(figures, step=epoch)
                return False

        _XGBSink.cls = ShipyardCallback
    return _XGBSink.cls(key)


# -- LightGBM -------------------------------------------------------------------------


def _enable_lightgbm() -> None:
    import lightgbm
    import lightgbm.engine
    import lightgbm.sklearn

    for module in (lightgbm, lightgbm.engine, lightgbm.sklearn):
        if hasattr(module, "train"):
            _core.patch(module, "train", _train_wrapper(_lgb_callback, "callbacks", "lightgbm"))
    _patch_fits(lightgbm.sklearn.LGBMModel)


class _LGBCallback:
    order = 30  # after LightGBM's own evaluation logging

    def __init__(self, key: int) -> None:
        self.key = key

    def __call__(self, env: Any) -> None:
        run = _SINKS.get(self.key)
        if run is None:
            return
        figures = {f"{item[0]}-{item[1]}": float(item[2]) for item in env.evaluation_result_list}
        if figures:
            run.log_metrics(figures, step=env.iteration)


def _lgb_callback(key: int) -> Any:
    return _LGBCallback(key)


# -- shared ---------------------------------------------------------------------------


def _train_wrapper(make_callback: Any, callbacks_arg: str, library: str) -> Any:
    def make(original: Any) -> Any:
        def train(*args: Any, **kwargs: Any) -> Any:
            if not _core.enabled():
                return original(*args, **kwargs)
            sink = _core.ITERATION_SINK.get()
            if _core.DEPTH.get() > 0:
                # Inside a wrapper's fit: add the iteration metrics to its run;
                # inside a search's candidates: nothing.
                with _callback(kwargs, make_callback, sink) as extended:
                    return original(*args, **extended)
            params = dict((args[0] if args else kwargs.get("params")) or {})
            rounds = _num_boost_round(original, args, kwargs)
            if rounds is not None:
                params.setdefault("num_boost_round", rounds)
            with _core.nested_call(), _core.autolog_run(f"{library}.train") as run:
                _core.safely("log params", lambda: _core.log_params(run, params))
                with _callback(kwargs, make_callback, run) as extended:
                    booster = original(*args, **extended)
                _core.safely("log the best iteration", lambda: log_best_iteration(run, booster))
                if _core.config().log_models:
                    _core.safely("log the model", lambda: log_model_artifact(run, booster))
                return booster

        return train

    return make


@contextlib.contextmanager
def _callback(
    kwargs: dict[str, Any], make_callback: Any, run: ActiveRun | None
) -> Iterator[dict[str, Any]]:
    """``kwargs`` with one more callback sending iteration metrics to ``run`` (if any)."""
    if run is None:
        yield kwargs
        return
    key = next(_KEYS)
    _SINKS[key] = run
    try:
        yield {**kwargs, "callbacks": [*(kwargs.get("callbacks") or []), make_callback(key)]}
    finally:
        _SINKS.pop(key, None)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def _patch_fits(base: type) -> None:
    """Wrap ``fit`` of ``base`` and of every subclass that defines its own (XGBClassifier...)."""
    seen: set[type] = set()
    todo = [base]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if "fit" in cls.__dict__:
            _core.patch(cls, "fit", _wrapper_fit)
        todo.extend(cls.__subclasses__())


def log_best_iteration(run: ActiveRun, booster: Any) -> None:
    best = getattr(booster, "best_iteration", None)
    if best == 0 and type(booster).__module__.startswith("lightgbm"):
        best = None  # LightGBM's 0 means "no early stopping", not the first iteration
    if best is None and hasattr(booster, "attr"):  # XGBoost keeps it as a booster attribute
        raw = booster.attr("best_iteration")
        best = int(raw) if raw is not None else None
    if best is not None and best >= 0:
        run.log_metric("best_iteration", float(best))
    score = getattr(booster, "best_score", None)
    if isinstance(score, int | float):
        run.log_metric("best_score", float(score))
    elif isinstance(score, dict):  # LightGBM: {evaluation set: {metric: value}}
        for dataset, metrics in score.items():
            for metric, value in dict(metrics).items():
                if isinstance(value, int | float):
                    run.log_metric(f"best_score.{dataset}-{metric}", float(value))


def _num_boost_round(train: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The number of boosting rounds a ``train`` call asked for (its default if not given)."""
    try:
        bound = inspect.signature(train).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    rounds = bound.arguments.get("num_boost_round")
    return rounds if isinstance(rounds, int) else None


def _wrapper_fit(original: Any) -> Any:
    """``XGBClassifier.fit`` & co: logged as a scikit-learn estimator plus iteration metrics."""

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _core.enabled() or _core.DEPTH.get() > 0:
            return original(self, *args, **kwargs)
        with _core.nested_call(), _core.autolog_run(type(self).__name__) as run:
            _core.safely("log params", lambda: _core.log_params(run, self.get_params()))
            token = _core.ITERATION_SINK.set(run)
            try:
                result = original(self, *args, **kwargs)
            finally:
                _core.ITERATION_SINK.reset(token)
            X = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            booster = self.get_booster() if hasattr(self, "get_booster") else self.booster_
            _core.safely("log the best iteration", lambda: log_best_iteration(run, booster))
            log_fitted(run, self, X, y)
            return result

    return fit
