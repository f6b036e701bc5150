"""What a run of the model gates found: each check, the metrics, slices, latency, size.

These records are what :func:`~shipyard.validation.gates.evaluate_gates`
returns, what is stored with the candidate version (as :meth:`GateReport.to_dict`)
and what ``shipyard validate model --json`` prints. :meth:`GateReport.from_dict`
reads a stored report back.

Example:
    >>> check = GateCheck("threshold", "accuracy", "accuracy >= 0.9", False, 0.8, 0.9, "too low")
    >>> GateReport("iris:4", None, "species", 30, {"accuracy": 0.8}, {}, (check,)).passed
    False
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Kinds of check a gate run can hold.
CHECK_KINDS = (
    "threshold",
    "min_absolute_change",
    "min_relative_change",
    "slice_gap",
    "latency",
    "size",
    "max_drop",  # an optimized version against its source (validation/fidelity.py)
    "agreement",
)


@dataclass(frozen=True)
class GateCheck:
    """One check: what was required, what was observed, whether it passed, and why."""

    kind: str
    metric: str | None
    requirement: str
    passed: bool
    observed: float | None
    limit: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": self.metric,
            "requirement": self.requirement,
            "passed": self.passed,
            "observed": _finite(self.observed),
            "limit": _finite(self.limit),
            "message": self.message,
        }


@dataclass(frozen=True)
class SliceReport:
    """A metric per value of a slice column, and the largest gap between slices.

    Slices with fewer than ``min_rows`` rows (or where the metric is undefined,
    e.g. ROC AUC on a slice holding one class) are listed in ``skipped`` and do
    not count towards the gap.
    """

    column: str
    metric: str
    values: dict[str, float]
    rows: dict[str, int]
    gap: float | None
    max_gap: float
    min_rows: int
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "metric": self.metric,
            "values": {k: _finite(v) for k, v in self.values.items()},
            "rows": dict(self.rows),
            "gap": _finite(self.gap),
            "max_gap": self.max_gap,
            "min_rows": self.min_rows,
            "skipped": dict(self.skipped),
        }


@dataclass(frozen=True)
class GateReport:
    """The outcome of gating ``candidate`` (optionally against ``champion``) on holdout data."""

    candidate: str
    champion: str | None
    target: str
    n_rows: int
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    checks: tuple[GateCheck, ...]
    slices: tuple[SliceReport, ...] = ()
    latency_ms: float | None = None
    size_mb: float | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def summary(self) -> str:
        against = f" against {self.champion}" if self.champion else ""
        if self.passed:
            return f"{self.candidate} passed {len(self.checks)} gate checks{against}"
        failed = "; ".join(c.requirement for c in self.failures)
        return (
            f"{self.candidate} failed {len(self.failures)} of {len(self.checks)} gate checks"
            f"{against}: {failed}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "candidate": self.candidate,
            "champion": self.champion,
            "target": self.target,
            "n_rows": self.n_rows,
            "candidate_metrics": {k: _finite(v) for k, v in self.candidate_metrics.items()},
            "champion_metrics": {k: _finite(v) for k, v in self.champion_metrics.items()},
            "checks": [c.to_dict() for c in self.checks],
            "slices": [s.to_dict() for s in self.slices],
            "latency_ms": self.latency_ms,
            "size_mb": self.size_mb,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        """Read back :meth:`to_dict` output (as stored with a version)."""
        return cls(
            candidate=data["candidate"],
            champion=data.get("champion"),
            target=data["target"],
            n_rows=int(data["n_rows"]),
            candidate_metrics=_floats(data.get("candidate_metrics", {})),
            champion_metrics=_floats(data.get("champion_metrics", {})),
            checks=tuple(
                GateCheck(
                    kind=c["kind"],
                    metric=c.get("metric"),
                    requirement=c["requirement"],
                    passed=bool(c["passed"]),
                    observed=c.get("observed"),
                    limit=c.get("limit"),
                    message=c.get("message", ""),
                )
                for c in data.get("checks", [])
            ),
            slices=tuple(
                SliceReport(
                    column=s["column"],
                    metric=s["metric"],
                    values=_floats(s.get("values", {})),
                    rows={k: int(v) for k, v in s.get("rows", {}).items()},
                    gap=s.get("gap"),
                    max_gap=float(s["max_gap"]),
                    min_rows=int(s.get("min_rows", 1)),
                    skipped=dict(s.get("skipped", {})),
                )
                for s in data.get("slices", [])
            ),
            latency_ms=data.get("latency_ms"),
            size_mb=data.get("size_mb"),
        )


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: an undefined metric is stored as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in values.items()}


__all__ = ["CHECK_KINDS", "GateCheck", "GateReport", "SliceReport"]
