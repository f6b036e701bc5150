"""What every autologging integration shares: the switch, the patches, the run to log into.

Only the *outermost* patched call logs: a pipeline fitting its steps, a search
fitting its candidates or a booster's ``fit`` calling ``train`` runs with
:data:`DEPTH` above zero, and the inner calls just run. The outer call decides
what the inner ones add (a booster's per-iteration metrics, through
:data:`ITERATION_SINK`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import ConflictError
from shipyard.tracking.runs import ActiveRun, Tracker

logger = logging.getLogger("shipyard.autolog")

#: How many patched calls are running in this thread/task; only depth 0 logs.
DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("shipyard_autolog_depth", default=0)
#: The run a booster's inner ``train`` sends per-iteration metrics to (set by the outer fit).
ITERATION_SINK: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar(
    "shipyard_autolog_iterations", default=None
)

_MAX_PARAM = 500  # characters of a param value kept; longer reprs are cut with an ellipsis


@dataclass
class Hooks:
    """What autologging needs from the layers above tracking (wired by ``shipyard.autolog``).

    ``signature(model, X)`` describes the model's inputs and outputs as a dict;
    ``register(model, name, X)`` registers the model as a new version of
    ``name`` (called only when ``register_as`` was given).
    """

    signature: Callable[[Any, Any], dict[str, Any]] | None = None
    register: Callable[[Any, str, Any], Any] | None = None


@dataclass
class Config:
    tracker: Tracker
    experiment: str | None = None
    log_models: bool = True
    register_as: str | None = None
    max_candidates: int = 200
    hooks: Hooks = field(default_factory=Hooks)


@dataclass
class _State:
    config: Config | None = None
    # (owner, attribute name, original value or _MISSING): undone by disable
    patches: list[tuple[Any, str, Any]] = field(default_factory=list)


STATE = _State()
_MISSING = object()


def enabled() -> bool:
    return STATE.config is not None


def config() -> Config:
    assert STATE.config is not None
    return STATE.config


def patch(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``owner.name`` by ``make(original)``, remembering how to undo it."""
    original_own = owner.__dict__.get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
    original = getattr(owner, name)
    wrapper = make(original)
    functools.update_wrapper(wrapper, original)
    wrapper.__shipyard_autolog__ = True  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)
    STATE.patches.append((owner, name, original_own))


def unpatch_all() -> None:
    for owner, name, original in reversed(STATE.patches):
        if original is _MISSING:
            with contextlib.suppress(AttributeError):
                delattr(owner, name)
        else:
            setattr(owner, name, original)
    STATE.patches.clear()


@contextlib.contextmanager
def nested_call() -> Iterator[None]:
    token = DEPTH.set(DEPTH.get() + 1)
    try:
        yield
    finally:
        DEPTH.reset(token)


@contextlib.contextmanager
def autolog_run(name: str) -> Iterator[ActiveRun]:
    """The active run if the user opened one, else a run of its own ended after the fit."""
    cfg = config()
    active = cfg.tracker.active_run
    if active is not None:
        yield active
        return
    with cfg.tracker.start_run(cfg.experiment, name=name) as run:
        yield run


def param_value(value: Any) -> str:
    text = value.__class__.__name__ if _is_estimator(value) else repr(value)
    if isinstance(value, str):
        text = value
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 1] + "…"


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and hasattr(value, "fit")


def log_params(run: ActiveRun, params: dict[str, Any]) -> None:
    """Log params; a value already logged differently (a second fit in one run) only warns."""
    clean = {str(k): param_value(v) for k, v in params.items()}
    try:
        run.log_params(clean)
    except ConflictError as exc:
        for key, value in clean.items():
            with contextlib.suppress(ConflictError):
                run.log_params({key: value})
        warnings.warn(f"autolog kept the first values of some params: {exc}", stacklevel=3)


def safely(what: str, action: Callable[[], Any]) -> Any:
    """Run ``action``; a failure of *logging* never fails the user's training."""
    try:
        return action()
    except Exception as exc:  # logged and moved on: the model is fitted either way
        logger.warning("autolog could not %s: %s", what, exc)
        warnings.warn(f"autolog could not {what}: {exc}", stacklevel=3)
        return None
