"""What a deployment is: its variants, weights, shadows and rollout policy, as frozen records.

A :class:`Deployment` is the desired state the servers converge to. It is
stored as a JSON spec (:meth:`Deployment.to_spec` / :meth:`Deployment.from_spec`)
with a revision for optimistic concurrency. Variant names are what every
response header, metric label and prediction-log row carries:

- ``primary``: the version that answers by default;
- ``canary``: a candidate taking ``canary_weight`` % of requests;
- ``ab:<version>``: an arm of an A/B split (the primary's arm stays ``primary``);
- ``shadow:<version>``: gets a copy of traffic; its answers are never returned.

Example:
    >>> d = Deployment(name="web", model="iris", primary=3, canary=4, canary_weight=10)
    >>> [(v.name, v.version, v.weight) for v in d.variants()]
    [('primary', 3, 90.0), ('canary', 4, 10.0)]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shipyard.errors import InvalidInputError

PRIMARY = "primary"
CANARY = "canary"
AB_PREFIX = "ab:"
SHADOW_PREFIX = "shadow:"


def shadow_variant(version: int) -> str:
    """The variant name a shadow's answers are logged under.

    >>> shadow_variant(5)
    'shadow:5'
    """
    return f"{SHADOW_PREFIX}{version}"


@dataclass(frozen=True)
class Variant:
    """One way a request can be answered: a name, a version and a weight in %."""

    name: str
    version: int
    weight: float


@dataclass(frozen=True)
class RolloutPolicy:
    """Progressive rollout: canary weights in ``steps`` (%), advanced while guards hold.

    A step is done after ``step_seconds`` or ``step_requests`` canary requests,
    whichever comes first (either may be None, not both). Guards are checked
    once the canary has ``min_requests`` requests in the current step:
    ``max_error_rate`` (5xx share), ``max_p99_seconds`` (p99 latency), and,
    when at least ``min_labels`` labelled rows exist for both, an accuracy no
    more than ``max_accuracy_drop`` below the primary's. A breach rolls the
    canary back; finishing the last step promotes it.

    Example:
        >>> RolloutPolicy(steps=(5, 25, 50, 100), step_requests=200).steps
        (5.0, 25.0, 50.0, 100.0)
    """

    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    step_seconds: float | None = 300.0
    step_requests: int | None = None
    min_requests: int = 20
    max_error_rate: float | None = 0.05
    max_p99_seconds: float | None = None
    max_accuracy_drop: float | None = None
    min_labels: int = 30

    def __post_init__(self) -> None:
        steps = tuple(float(s) for s in self.steps)
        object.__setattr__(self, "steps", steps)
        if not steps:
            raise InvalidInputError(
                "policy.steps is empty; give canary weights such as 5,25,50,100."
            )
        if any(not 0 < s <= 100 for s in steps) or any(
            b <= a for a, b in itertools.pairwise(steps)
        ):
            raise InvalidInputError(
                f"policy.steps must be increasing weights in (0, 100], got {list(steps)}."
            )
        if self.step_seconds is None and self.step_requests is None:
            raise InvalidInputError(
                "A policy needs step_seconds or step_requests (or both) to know when a step "
                "is done."
            )
        if self.step_seconds is not None and self.step_seconds <= 0:
            raise InvalidInputError(f"policy.step_seconds must be > 0, got {self.step_seconds}.")
        if self.step_requests is not None and self.step_requests < 1:
            raise InvalidInputError(f"policy.step_requests must be >= 1, got {self.step_requests}.")
        if self.min_requests < 1 or self.min_labels < 1:
            raise InvalidInputError("policy.min_requests and policy.min_labels must be >= 1.")
        for key in ("max_error_rate", "max_accuracy_drop"):
            value = getattr(self, key)
            if value is not None and not 0 <= value <= 1:
                raise InvalidInputError(f"policy.{key} must be in [0, 1], got {value}.")
        if self.max_p99_seconds is not None and self.max_p99_seconds <= 0:
            raise InvalidInputError(
                f"policy.max_p99_seconds must be > 0, got {self.max_p99_seconds}."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "step_seconds": self.step_seconds,
            "step_requests": self.step_requests,
            "min_requests": self.min_requests,
            "max_error_rate": self.max_error_rate,
            "max_p99_seconds": self.max_p99_seconds,
            "max_accuracy_drop": self.max_accuracy_drop,
            "min_labels": self.min_labels,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutPolicy:
        known = set(cls().to_dict())
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"Unknown policy fields {unknown}; known: {sorted(known)}.")
        data = dict(data)
        if "steps" in data:
            data["steps"] = tuple(data["steps"])
        return cls(**data)


@dataclass(frozen=True)
class Deployment:
    """The desired state of one deployment (all versions belong to ``model``).

    ``follows`` names the alias of ``model`` the deployment was created from
    (``iris`` or ``iris@production``): every change of its primary moves that
    alias along, so the deployment and the registry tell one story.
    """

    name: str
    model: str
    primary: int
    canary: int | None = None
    canary_weight: float = 0.0
    split: tuple[tuple[int, float], ...] = ()
    sticky_header: str | None = None
    shadows: tuple[int, ...] = ()
    policy: RolloutPolicy | None = None
    step: int = 0
    step_started_at: datetime | None = None
    epoch: int = 1
    paused: bool = False
    killed: bool = False
    history: tuple[int, ...] = ()
    last_known_good: int | None = None
    follows: str | None = None
    revision: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.canary is not None and self.split:
            raise InvalidInputError(
                "A deployment has either a canary or an A/B split, not both; finish or roll "
                "back the canary first."
            )
        if self.canary is not None and not 0 < self.canary_weight <= 100:
            raise InvalidInputError(
                f"Canary weight must be in (0, 100] %, got {self.canary_weight}."
            )
        if self.canary is None and self.canary_weight:
            raise InvalidInputError("canary_weight is set but there is no canary version.")
        if self.split:
            check_split(self.primary, dict(self.split))

    # -- routing -------------------------------------------------------------------------

    def variants(self) -> list[Variant]:
        """The variants that answer requests, with weights adding up to 100."""
        if self.canary is not None:
            w = float(self.canary_weight)
            out = [Variant(CANARY, self.canary, w)]
            if w < 100:
                out.insert(0, Variant(PRIMARY, self.primary, 100.0 - w))
            return out
        if self.split:
            return [
                Variant(PRIMARY if v == self.primary else f"{AB_PREFIX}{v}", v, float(w))
                for v, w in self.split
                if w > 0
            ]
        return [Variant(PRIMARY, self.primary, 100.0)]

    def versions(self) -> set[int]:
        """Every version a server must load: answering variants and shadows."""
        return {v.version for v in self.variants()} | set(self.shadows) | {self.primary}

    @property
    def mode(self) -> str:
        if self.killed:
            return "killed"
        if self.canary is not None:
            return "canary"
        if self.split:
            return "ab"
        return "primary"

    # -- storage -------------------------------------------------------------------------

    def to_spec(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "canary": self.canary,
            "canary_weight": self.canary_weight,
            "split": [[v, w] for v, w in self.split],
            "sticky_header": self.sticky_header,
            "shadows": list(self.shadows),
            "policy": None if self.policy is None else self.policy.to_dict(),
            "step": self.step,
            "step_started_at": None
            if self.step_started_at is None
            else self.step_started_at.isoformat(),
            "epoch": self.epoch,
            "paused": self.paused,
            "killed": self.killed,
            "history": list(self.history),
            "last_known_good": self.last_known_good,
            "follows": self.follows,
        }

    @classmethod
    def from_spec(
        cls,
        name: str,
        model: str,
        spec: dict[str, Any],
        *,
        revision: int = 0,
        updated_at: datetime | None = None,
        updated_by: str | None = None,
    ) -> Deployment:
        started = spec.get("step_started_at")
        policy = spec.get("policy")
        return cls(
            name=name,
            model=model,
            primary=int(spec["primary"]),
            canary=None if spec.get("canary") is None else int(spec["canary"]),
            canary_weight=float(spec.get("canary_weight") or 0.0),
            split=tuple((int(v), float(w)) for v, w in spec.get("split") or ()),
            sticky_header=spec.get("sticky_header"),
            shadows=tuple(int(v) for v in spec.get("shadows") or ()),
            policy=None if policy is None else RolloutPolicy.from_dict(policy),
            step=int(spec.get("step") or 0),
            step_started_at=None if started is None else datetime.fromisoformat(started),
            epoch=int(spec.get("epoch") or 1),
            paused=bool(spec.get("paused")),
            killed=bool(spec.get("killed")),
            history=tuple(int(v) for v in spec.get("history") or ()),
            last_known_good=spec.get("last_known_good"),
            follows=spec.get("follows"),
            revision=revision,
            updated_at=updated_at,
            updated_by=updated_by,
        )

    def evolve(self, **changes: Any) -> Deployment:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


def check_split(primary: int, split: dict[int, float]) -> None:
    """An A/B split names the primary, has no negative weight, and adds up to 100.

    >>> check_split(3, {3: 50, 4: 40})
    Traceback (most recent call last):
    ...
    shipyard.errors.InvalidInputError: A/B weights must add up to 100 %, got 90 (3=50, 4=40).
    """
    listed = ", ".join(f"{v}={w:g}" for v, w in split.items())
    if len(split) < 2:
        raise InvalidInputError(f"An A/B split needs at least two versions, got {listed}.")
    if any(w < 0 or not math.isfinite(w) for w in split.values()):
        raise InvalidInputError(f"A/B weights must be finite and >= 0, got {listed}.")
    total = sum(split.values())
    if not math.isclose(total, 100.0, abs_tol=1e-6):
        raise InvalidInputError(f"A/B weights must add up to 100 %, got {total:g} ({listed}).")
    if primary not in split:
        raise InvalidInputError(
            f"An A/B split must include the primary version {primary} (got {listed}); set a "
            "weight for it, or make another version primary first."
        )


__all__ = [
    "AB_PREFIX",
    "CANARY",
    "PRIMARY",
    "SHADOW_PREFIX",
    "Deployment",
    "RolloutPolicy",
    "Variant",
    "check_split",
    "shadow_variant",
]
