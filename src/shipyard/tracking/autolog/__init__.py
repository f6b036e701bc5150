"""Autologging: fit as usual, and the run records itself.

>>> shipyard.autolog()                                   # doctest: +SKIP
>>> LogisticRegression(C=0.5).fit(X, y)                  # a run with params, scores, model
>>> GridSearchCV(SVC(), {"C": [1, 10]}).fit(X, y)        # a parent run + one child per candidate
>>> xgboost.XGBClassifier().fit(X, y, eval_set=[(Xv, yv)])  # per-iteration eval metrics
>>> shipyard.autolog(disable=True)                       # doctest: +SKIP

See :mod:`.sklearn` and :mod:`.boosting` for what each integration logs.
Enabling again replaces the previous settings; disabling restores every
patched method.
"""

from __future__ import annotations

from shipyard.tracking.autolog import _core
from shipyard.tracking.autolog._core import Hooks
from shipyard.tracking.runs import Tracker

__all__ = ["Hooks", "autolog", "is_enabled"]


def autolog(
    tracker: Tracker,
    *,
    disable: bool = False,
    experiment: str | None = None,
    log_models: bool = True,
    register_as: str | None = None,
    max_candidates: int = 200,
    hooks: Hooks | None = None,
) -> None:
    """Turn autologging on (or off with ``disable=True``) for scikit-learn, XGBoost, LightGBM.

    Runs it starts go to ``experiment`` (default: ``"default"``); inside an
    open run it logs into that run. ``log_models=False`` keeps the model out
    of the run's artifacts; ``register_as="name"`` also registers each fitted
    model as a new version of ``name``. A search logs at most
    ``max_candidates`` child runs.
    """
    _core.unpatch_all()
    _core.STATE.config = None
    if disable:
        return
    _core.STATE.config = _core.Config(
        tracker=tracker,
        experiment=experiment,
        log_models=log_models,
        register_as=register_as,
        max_candidates=max_candidates,
        hooks=hooks or Hooks(),
    )
    from shipyard.tracking.autolog import boosting, sklearn

    sklearn.enable()
    boosting.enable()


def is_enabled() -> bool:
    return _core.enabled()
