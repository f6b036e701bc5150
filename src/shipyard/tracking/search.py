"""``search_runs``: runs matching a filter, as a DataFrame with one row per run.

The columns are MLflow's: ``run_id``, ``experiment``, ``run_name``,
``status``, ``start_time``, ``end_time``, ``user_id``, ``parent_run_id``,
then ``metrics.<key>`` (latest values, floats), ``params.<key>`` and
``tags.<key>`` (strings), each group sorted by key. ``shipyard runs search
--json`` prints the same columns, one object per run (:func:`runs_records`;
null where a run lacks a metric, param or tag). The filter language is in
:mod:`shipyard.store.run_filter`; the search runs in SQL
(:mod:`shipyard.store.run_search`).

>>> shipyard.search_runs("iris", filter="metrics.accuracy > 0.9",
...                      order_by=["metrics.accuracy DESC"])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from shipyard.store import records
from shipyard.store.run_search import RunSearch

__all__ = ["runs_frame", "runs_records", "search_runs"]

_BASE = [
    "run_id",
    "experiment",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "user_id",
    "parent_run_id",
]


def search_runs(
    search: RunSearch,
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: list[str] | None = None,
    max_results: int = 1000,
) -> pd.DataFrame:
    """Runs of ``experiment`` (a name, names, or None for all) matching ``filter``."""
    names = [experiment] if isinstance(experiment, str) else experiment
    return runs_frame(search.search(names, filter, order_by, max_results))


def runs_frame(runs: list[records.Run]) -> pd.DataFrame:
    """One row per run, columns as in the module doc (empty runs: just the base columns)."""
    metric_keys = sorted({k for r in runs for k in r.metrics})
    param_keys = sorted({k for r in runs for k in r.params})
    tag_keys = sorted({k for r in runs for k in r.tags})
    columns: dict[str, list[object]] = {
        "run_id": [r.id for r in runs],
        "experiment": [r.experiment for r in runs],
        "run_name": [r.name for r in runs],
        "status": [r.status for r in runs],
        "start_time": [r.start_time for r in runs],
        "end_time": [r.end_time for r in runs],
        "user_id": [r.created_by for r in runs],
        "parent_run_id": [r.parent_id for r in runs],
    }
    for key in metric_keys:
        columns[f"metrics.{key}"] = [r.metrics.get(key, float("nan")) for r in runs]
    for key in param_keys:
        columns[f"params.{key}"] = [r.params.get(key) for r in runs]
    for key in tag_keys:
        columns[f"tags.{key}"] = [r.tags.get(key) for r in runs]
    frame = pd.DataFrame(columns, columns=list(columns))
    for key in metric_keys:
        frame[f"metrics.{key}"] = frame[f"metrics.{key}"].astype("float64")
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def runs_records(runs: list[records.Run]) -> list[dict[str, object]]:
    """The rows of :func:`runs_frame` as plain objects, one per run, for JSON.

    Same keys in the same order as the DataFrame's columns (a script moving
    between the CLI and Python reads the same names); a value the run lacks is
    None (the DataFrame's NaN), times stay datetimes for the caller to format.
    """
    frame = runs_frame(runs)
    out = []
    for run, row in zip(runs, frame.to_dict("records"), strict=True):
        record: dict[str, object] = {c: (None if _missing(v) else v) for c, v in row.items()}
        record["start_time"], record["end_time"] = run.start_time, run.end_time
        out.append(record)
    return out


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
