"""Records the loop store hands out (runs, steps, trigger checks, refused claims), statuses.

>>> RunStatus.REJECTED == "rejected"
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shipyard.errors import NotFoundError


class RunStatus(StrEnum):
    """Where a loop run is. Active runs (the first three) block new claims for their model."""

    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    CANARY = "canary"
    PROMOTED = "promoted"
    #: The champion stays: the challenger was not good enough (gates, a rejection).
    REJECTED = "rejected"
    #: The champion stays: the challenger's canary was not good enough.
    ROLLED_BACK = "rolled_back"
    #: Something broke; the trigger is retried and no cool-down starts.
    FAILED = "failed"


RUN_STATUSES = tuple(s.value for s in RunStatus)
ACTIVE_STATUSES = (RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL, RunStatus.CANARY)
STEP_STATUSES = ("succeeded", "failed", "skipped", "waiting")
#: Marks a second (third...) claim of one trigger occurrence after failed runs.
RETRY_MARK = "#retry"


class LoopRunNotFoundError(NotFoundError):
    """No loop run with that id."""


@dataclass(frozen=True)
class LoopStep:
    """One recorded step of a loop run."""

    id: int
    run_id: int
    name: str
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime
    duration_s: float


@dataclass(frozen=True)
class LoopRun:
    """One pass of the loop for one model, started by one claimed trigger."""

    id: int
    model: str
    trigger_kind: str
    trigger_key: str
    reason: str
    details: dict[str, Any]
    status: str
    message: str | None
    champion_version: int | None
    candidate_version: int | None
    claimed_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    steps: tuple[LoopStep, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class ClaimRefused:
    """Why a trigger could not be claimed, and the run in the way.

    ``why`` is ``active`` (a run of the model is still going), ``handled``
    (this occurrence already has a run that did not fail), ``cooling_down``
    (a run of this trigger kind started within the cool-down; ``until`` is
    when it ends) or ``race`` (another controller claimed it at the same moment).
    """

    why: str
    run: LoopRun | None = None
    until: datetime | None = None

    def describe(self, retrain_command: str | None = None) -> str:
        """Why, in a sentence; ``retrain_command`` is the full command that retrains now."""
        run = self.run
        if self.why == "active" and run is not None:
            return (
                f"run {run.id} is still {run.status} (since {run.created_at:%Y-%m-%d %H:%M} "
                "UTC); later ticks resume it"
            )
        if self.why == "handled" and run is not None:
            return f"this occurrence was handled already by run {run.id} ({run.status})"
        if self.why == "cooling_down" and run is not None and self.until is not None:
            return (
                f"cooling down: run {run.id} ({run.trigger_kind}, {run.status}) started "
                f"{run.created_at:%Y-%m-%d %H:%M} UTC; no new {run.trigger_kind} run before "
                f"{self.until:%Y-%m-%d %H:%M} UTC (failed runs do not count). "
                f"`{retrain_command or f'shipyard loop trigger {run.model} -c LOOP_CONFIG'}` "
                "retrains now"
            )
        return "another controller claimed it at the same moment"


@dataclass(frozen=True)
class TriggerCheck:
    """One evaluation of a trigger kept for "sustained over N checks" rules."""

    id: int
    model: str
    kind: str
    at: datetime
    positive: bool
    details: dict[str, Any]


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: NaN/inf become None, unknown objects their ``str``.

    PostgreSQL's JSON type refuses NaN, and step outputs carry metrics that may be NaN.

    >>> json_safe({"a": float("nan"), "b": (1, 2)})
    {'a': None, 'b': [1, 2]}
    """

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return clean(json.loads(json.dumps(value, default=_default)))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return str(value)
