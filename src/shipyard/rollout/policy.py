"""The progressive rollout decision: hold, advance a step, or roll back, from live numbers.

Pure: given a deployment, the counters its servers reported for the current
step (summed over workers), the labelled accuracy if any, and the time, it
returns a :class:`Verdict`. The controller applies it. Guards are checked
before a step may complete, so a canary never advances on too little evidence:

- error rate: 5xx answers / requests, above ``max_error_rate``;
- p99 latency: estimated from a latency histogram (the upper bound of the
  bucket holding the 99th percentile: pessimistic, never flatters a canary),
  above ``max_p99_seconds``;
- accuracy: canary accuracy below the primary's by more than
  ``max_accuracy_drop``. Each side is its realized accuracy once labels arrived
  for at least ``min_labels`` of its rows; until then, its CBPE-estimated
  accuracy over at least ``min_labels`` rows with probabilities (calibrated on
  the version's reference data when it has a calibration), so a canary that is
  clearly worse is rolled back before its labels come in.

Example:
    >>> from shipyard.rollout.records import Deployment, RolloutPolicy
    >>> d = Deployment("web", "iris", 1, canary=2, canary_weight=5,
    ...                policy=RolloutPolicy(step_requests=10, min_requests=10))
    >>> stats = {"canary": VariantStats("canary", 2, requests=10, errors=3)}
    >>> decide(d, stats, now=None).action
    'rollback'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shipyard.rollout.records import CANARY, PRIMARY, Deployment

#: Upper bounds (seconds) of the latency histogram every server keeps per variant.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    math.inf,
)


def bucket_key(bound: float) -> str:
    return "inf" if math.isinf(bound) else f"{bound:g}"


@dataclass(frozen=True)
class VariantStats:
    """Requests, 5xx errors and a latency histogram of one variant in one step."""

    variant: str
    version: int
    requests: int = 0
    errors: int = 0
    latency: Mapping[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """Upper bound of the histogram bucket holding quantile ``q`` (None: no data)."""
        total = sum(self.latency.values())
        if total == 0:
            return None
        need, seen = q * total, 0
        for bound in LATENCY_BOUNDS:
            seen += self.latency.get(bucket_key(bound), 0)
            if seen >= need:
                return bound
        return math.inf

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)


def merge_stats(rows: Iterable[Any]) -> dict[str, VariantStats]:
    """Sum per-worker counters (anything with variant/version/requests/errors/latency)."""
    merged: dict[str, VariantStats] = {}
    for r in rows:
        old = merged.get(r.variant) or VariantStats(r.variant, r.version)
        latency = dict(old.latency)
        for key, count in r.latency.items():
            latency[key] = latency.get(key, 0) + int(count)
        merged[r.variant] = VariantStats(
            r.variant, r.version, old.requests + r.requests, old.errors + r.errors, latency
        )
    return merged


@dataclass(frozen=True)
class Accuracy:
    """Labelled rows and correct answers of one variant; its CBPE estimate over
    ``scored`` rows with probabilities (None without them)."""

    correct: int
    labelled: int
    estimated: float | None = None
    scored: int = 0
    calibrated: bool = False

    @property
    def rate(self) -> float:
        return self.correct / self.labelled if self.labelled else math.nan

    def evidence(self, min_labels: int) -> tuple[float, str] | None:
        """The accuracy to judge by and where it comes from: realized with enough
        labels, else estimated with enough scored rows, else None."""
        if self.labelled >= min_labels:
            return self.rate, f"{self.labelled} labelled"
        if self.estimated is not None and self.scored >= min_labels:
            how = "calibrated " if self.calibrated else ""
            return self.estimated, f"{how}estimate over {self.scored} unlabelled rows"
        return None


@dataclass(frozen=True)
class Verdict:
    """What the policy says: ``hold``, ``advance`` (or promote after the last step),
    ``rollback``; ``guard`` names the breached guard for rollbacks."""

    action: Literal["hold", "advance", "rollback"]
    reason: str
    guard: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def decide(
    d: Deployment,
    stats: Mapping[str, VariantStats],
    *,
    now: datetime | None,
    accuracy: Mapping[str, Accuracy] | None = None,
) -> Verdict:
    """The policy's verdict on ``d``'s canary right now (see the module doc)."""
    policy = d.policy
    if d.canary is None or policy is None:
        return Verdict("hold", "no canary under a rollout policy")
    if d.paused or d.killed:
        return Verdict("hold", "the rollout is paused")
    canary = stats.get(CANARY) or VariantStats(CANARY, d.canary)
    details: dict[str, Any] = {
        "step": d.step,
        "weight": d.canary_weight,
        "canary_requests": canary.requests,
        "canary_errors": canary.errors,
        "canary_p99_seconds": canary.p99,
    }
    if canary.requests < policy.min_requests:
        return Verdict(
            "hold",
            f"waiting for evidence: {canary.requests}/{policy.min_requests} canary requests",
            details=details,
        )
    if policy.max_error_rate is not None and canary.error_rate > policy.max_error_rate:
        return Verdict(
            "rollback",
            f"canary {d.model}:{d.canary} error rate {canary.error_rate:.1%} "
            f"({canary.errors}/{canary.requests}) is above the guard {policy.max_error_rate:.1%}",
            guard="error_rate",
            details=details,
        )
    p99 = canary.p99
    if policy.max_p99_seconds is not None and p99 is not None and p99 > policy.max_p99_seconds:
        return Verdict(
            "rollback",
            f"canary {d.model}:{d.canary} p99 latency is above {p99 * 1000:g} ms (histogram "
            f"bucket), over the guard {policy.max_p99_seconds * 1000:g} ms",
            guard="p99_latency",
            details=details,
        )
    if policy.max_accuracy_drop is not None and accuracy:
        mine, theirs = accuracy.get(CANARY), accuracy.get(PRIMARY)
        canary_says = None if mine is None else mine.evidence(policy.min_labels)
        primary_says = None if theirs is None else theirs.evidence(policy.min_labels)
        if canary_says is not None and primary_says is not None:
            (canary_rate, canary_how), (primary_rate, primary_how) = canary_says, primary_says
            details.update(
                canary_accuracy=canary_rate,
                primary_accuracy=primary_rate,
                canary_accuracy_source=canary_how,
                primary_accuracy_source=primary_how,
            )
            if canary_rate < primary_rate - policy.max_accuracy_drop:
                return Verdict(
                    "rollback",
                    f"canary {d.model}:{d.canary} accuracy {canary_rate:.1%} ({canary_how}) is "
                    f"more than {policy.max_accuracy_drop:.1%} below the primary's "
                    f"{primary_rate:.1%} ({primary_how})",
                    guard="accuracy",
                    details=details,
                )
    done_by_requests = policy.step_requests is not None and canary.requests >= policy.step_requests
    elapsed = None
    if now is not None and d.step_started_at is not None:
        elapsed = (now - d.step_started_at).total_seconds()
    done_by_time = (
        policy.step_seconds is not None and elapsed is not None and elapsed >= policy.step_seconds
    )
    if done_by_requests or done_by_time:
        why = (
            f"{canary.requests} canary requests"
            if done_by_requests
            else f"{elapsed:.0f} s at {d.canary_weight:g} %"
        )
        return Verdict(
            "advance", f"step {d.step + 1} done ({why}) with guards holding", details=details
        )
    return Verdict("hold", "guards hold; step not done yet", details=details)


__all__ = [
    "LATENCY_BOUNDS",
    "Accuracy",
    "VariantStats",
    "Verdict",
    "bucket_key",
    "decide",
    "merge_stats",
]
