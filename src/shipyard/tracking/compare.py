"""Runs side by side: params with the differences marked, metrics with last, best and steps.

>>> comparison = compare_runs(store, [run_a, run_b])     # doctest: +SKIP
>>> [p.key for p in comparison.params if p.differs]      # doctest: +SKIP
['C']

"Best" is the highest value, or the lowest for a metric whose name says it is
an error or a loss (``loss``, ``error``, ``mse``, ``rmse``, ``mae``, ...),
the same rule for every run so the column compares like with like.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shipyard.errors import InvalidInputError
from shipyard.store import records
from shipyard.store.run_store import RunStore

__all__ = ["Comparison", "MetricRow", "ParamRow", "compare_runs", "lower_is_better"]

# LightGBM and XGBoost name their losses l1, l2, huber, quantile... after the data set
# (``valid_0-l2``, ``validation_0-rmse``): matched as whole words too.
_LOWER = re.compile(
    r"loss|error|err\b|mse|mae|mape|rmse|logloss|perplexity|wer|cer|_time|latency"
    r"|(?:^|[^a-z0-9])(?:l1|l2|huber|fair|quantile|poisson|gamma|tweedie|mlogloss)(?:$|[^a-z0-9])"
)


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of metric ``key`` is better, by its name."""
    return bool(_LOWER.search(key.lower()))


@dataclass(frozen=True)
class MetricValue:
    last: float
    best: float
    steps: int
    last_step: int


@dataclass(frozen=True)
class ParamRow:
    key: str
    values: dict[str, str | None]
    differs: bool


@dataclass(frozen=True)
class MetricRow:
    key: str
    goal: str  # "max" or "min": which end "best" takes
    values: dict[str, MetricValue | None]
    differs: bool

    @property
    def stepped(self) -> bool:
        return any(v is not None and v.steps > 1 for v in self.values.values())


@dataclass(frozen=True)
class Comparison:
    runs: list[records.Run]
    params: list[ParamRow] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)


def compare_runs(store: RunStore, run_ids: list[str]) -> Comparison:
    """Compare two or more runs (ids or unique prefixes) of any experiments."""
    if len(run_ids) < 2:
        raise InvalidInputError(f"Compare needs at least two runs, got {len(run_ids)}.")
    runs = [store.get_run(store.expand_id(r)) for r in run_ids]
    ids = [r.id for r in runs]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("The same run was given twice; give distinct runs to compare.")
    params = []
    for key in sorted({k for r in runs for k in r.params}):
        values = {r.id: r.params.get(key) for r in runs}
        params.append(ParamRow(key, values, len(set(values.values())) > 1))
    summaries = {r.id: {s.key: s for s in store.metric_summaries(r.id)} for r in runs}
    metrics = []
    for key in sorted({k for s in summaries.values() for k in s}):
        goal = "min" if lower_is_better(key) else "max"
        cells: dict[str, MetricValue | None] = {}
        for run_id, by_key in summaries.items():
            s = by_key.get(key)
            cells[run_id] = (
                None
                if s is None
                else MetricValue(
                    s.last, s.minimum if goal == "min" else s.maximum, s.steps, s.last_step
                )
            )
        lasts = {None if v is None else v.last for v in cells.values()}
        metrics.append(MetricRow(key, goal, cells, len(lasts) > 1))
    return Comparison(runs, params, metrics)
