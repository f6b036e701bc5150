"""Fidelity gates: how an optimized model compares with the version it was made from.

An optimized version (quantized, pruned, distilled) is a challenger whose champion
is its own source. Two kinds of check, on the same rows:

- **Metric drop** (``max_drop``): on a labelled holdout, the candidate's metric may
  be worse than the source's by at most the given amount (``accuracy:0.01``: one
  point of accuracy; for ``rmse``/``mae`` "worse" means higher).
- **Agreement** (``min_agreement``, classifiers): the share of rows where the
  candidate predicts the same label as the source. It needs no labels, so it runs
  on the source's training sample when there is no holdout.

The outcome is an ordinary :class:`~shipyard.validation.gate_results.GateReport`,
stored with the candidate like any gate run, so a failing candidate is refused
``production`` by the same promotion policy.

Example:
    >>> parse_max_drop(["accuracy:0.01"])
    {'accuracy': 0.01}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shipyard.errors import InvalidInputError
from shipyard.validation.gate_results import GateCheck, GateReport
from shipyard.validation.gates import (
    GREATER_IS_BETTER,
    METRICS,
    Scorable,
    compute_metrics,
    metrics_for,
    task_of,
)

DEFAULT_MIN_AGREEMENT = 0.95
#: What a classifier (regressor) may always lose at most, unless --max-drop names that metric.
DEFAULT_MAX_DROP = {"classification": {"accuracy": 0.01}, "regression": {"r2": 0.01}}
_DROP = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*([0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class FidelitySpec:
    """The checks an optimized candidate must pass against its source."""

    max_drop: Mapping[str, float] = field(default_factory=dict)
    min_agreement: float = DEFAULT_MIN_AGREEMENT

    def __post_init__(self) -> None:
        for metric, drop in self.max_drop.items():
            if metric not in METRICS:
                raise InvalidInputError(
                    f"--max-drop: unknown metric {metric!r}; known metrics: {', '.join(METRICS)}."
                )
            if not math.isfinite(drop) or drop < 0:
                raise InvalidInputError(f"--max-drop {metric}: expected a number >= 0, got {drop}.")
        if not 0 <= self.min_agreement <= 1:
            raise InvalidInputError(
                f"--min-agreement: expected a share between 0 and 1, got {self.min_agreement}."
            )

    def drops_for(self, task: str) -> dict[str, float]:
        """The metric drops to check for a model of ``task``: the default plus the given ones.

        ``--max-drop roc_auc:0.005`` adds a check; it does not lift the default
        (accuracy for a classifier, r2 for a regressor). A drop given for the
        default's own metric replaces it (``accuracy:0.02`` loosens, ``accuracy:1``
        effectively turns it off).
        """
        return {**DEFAULT_MAX_DROP[task], **self.max_drop}


def parse_max_drop(texts: Sequence[str]) -> dict[str, float]:
    """``["accuracy:0.01"]`` -> ``{"accuracy": 0.01}``; a clear error for anything else."""
    out: dict[str, float] = {}
    for text in texts:
        match = _DROP.match(text)
        if not match:
            raise InvalidInputError(
                f"--max-drop {text!r} is not METRIC:AMOUNT (e.g. accuracy:0.01)."
            )
        try:
            out[match.group(1)] = float(match.group(2))
        except ValueError:
            raise InvalidInputError(
                f"--max-drop {text!r}: {match.group(2)!r} is not a number."
            ) from None
    return out


def agreement(candidate: np.ndarray, source: np.ndarray) -> float:
    """Share of rows where the two label arrays agree (compared as text: 1 == '1')."""
    if len(source) == 0:
        return math.nan
    return float(np.mean(np.asarray(candidate).astype(str) == np.asarray(source).astype(str)))


def evaluate_fidelity(
    candidate: Scorable,
    source: Scorable,
    data: pd.DataFrame,
    target: str | None,
    spec: FidelitySpec,
) -> GateReport:
    """Gate ``candidate`` against ``source`` on ``data`` (with a ``target`` column, or
    unlabelled when ``target`` is None: agreement only)."""
    task = task_of(source)
    if task_of(candidate) != task:
        raise InvalidInputError(
            f"{candidate.ref} is a {task_of(candidate)} model but {source.ref} is a {task} model."
        )
    if len(data) == 0:
        raise InvalidInputError("The holdout data has no rows.")
    X = data if target is None else data.drop(columns=[target])
    checks: list[GateCheck] = []
    cand_metrics: dict[str, float] = {}
    src_metrics: dict[str, float] = {}
    if target is not None:
        if data[target].isna().any():
            raise InvalidInputError(
                f"Target column {target!r} has missing values; gate on labelled rows only."
            )
        y = data[target]
        names = tuple(m for m in metrics_for(task, source) if m in metrics_for(task, candidate))
        drops = spec.drops_for(task)
        for metric in drops:
            if metric not in names:
                raise InvalidInputError(
                    f"--max-drop {metric}: not a metric of this {task} model; use one of "
                    f"{', '.join(names)}."
                )
        cand_metrics = compute_metrics(candidate, X, y, names)
        src_metrics = compute_metrics(source, X, y, names)
        for metric, allowed in drops.items():
            checks.append(_drop_check(metric, allowed, cand_metrics[metric], src_metrics[metric]))
    elif task == "regression":
        raise InvalidInputError(
            "A regressor is gated on its metric: give --holdout FILE --target COLUMN."
        )
    if task == "classification":
        share = agreement(candidate.predict(X), source.predict(X))
        checks.append(
            GateCheck(
                "agreement",
                None,
                f"same label as {source.ref} on >= {spec.min_agreement:.1%} of rows",
                share >= spec.min_agreement,
                share,
                spec.min_agreement,
                f"{share:.2%} of {len(X)} rows get the same label as {source.ref} "
                f"(needs {spec.min_agreement:.1%})",
            )
        )
    return GateReport(
        candidate=candidate.ref,
        champion=source.ref,
        target=target or "(none: agreement on the training sample)",
        n_rows=len(data),
        candidate_metrics=cand_metrics,
        champion_metrics=src_metrics,
        checks=tuple(checks),
    )


def _drop_check(metric: str, allowed: float, value: float, base: float) -> GateCheck:
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    drop = sign * (base - value)  # positive: the candidate is worse
    ok = math.isfinite(drop) and drop <= allowed + 1e-12
    return GateCheck(
        "max_drop",
        metric,
        f"{metric} drop vs source <= {allowed:g}",
        ok,
        drop if math.isfinite(drop) else None,
        allowed,
        f"{metric} {base:.6g} -> {value:.6g} (drop {drop:+.4g}; allowed {allowed:g})",
    )


__all__ = [
    "DEFAULT_MIN_AGREEMENT",
    "FidelitySpec",
    "agreement",
    "evaluate_fidelity",
    "parse_max_drop",
]
