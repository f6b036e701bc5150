"""Accuracy figures per time bucket, aggregated inside DuckDB: for dashboards over
millions of logged rows.

:func:`~shipyard.monitoring.performance.performance` reads every labelled row
into pandas when the log has probabilities, to compute every metric (ROC AUC,
the CBPE estimates...);
over a month of a busy model that takes seconds. A dashboard needs only the
accuracy figures, which are sums: per bucket, the predictions, the labelled
ones, the correct ones (label and prediction compared as
:func:`~shipyard.monitoring.records.class_key` texts) and the expected
correct ones (CBPE: the probability of the predicted class, or the largest
when the prediction is not among the probability columns; rows with a
missing probability left out). Labels join exactly as in
:func:`~shipyard.monitoring.queries.read_labelled` (newest label wins, one
prediction per variant takes it). ``tests/monitoring/test_bucket_figures.py``
checks the figures equal :func:`performance`'s.

>>> import tempfile
>>> from datetime import UTC, datetime, timedelta
>>> bucket_accuracy(SegmentStore(tempfile.mkdtemp()), "iris",
...                 since=datetime(2024, 1, 1, tzinfo=UTC), step=timedelta(hours=1), count=2)
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shipyard.monitoring.compaction import dedupe_clause
from shipyard.monitoring.queries import (
    _CLOCK_SLACK,
    _SCAN,
    _columns,
    _days,
    _feedback_files,
    _q,
    _translated,
    newest_labels,
)
from shipyard.monitoring.records import PROBA_PREFIX
from shipyard.monitoring.segments import SegmentStore

__all__ = ["BucketAccuracy", "bucket_accuracy"]


@dataclass(frozen=True)
class BucketAccuracy:
    """Sums over one bucket (``index`` counts buckets from ``since``)."""

    index: int
    n_predictions: int
    n_labelled: int
    n_correct: int
    n_estimated: int  # rows with every probability present
    expected_correct: float

    @property
    def coverage(self) -> float | None:
        return self.n_labelled / self.n_predictions if self.n_predictions else None

    @property
    def realized_accuracy(self) -> float | None:
        return self.n_correct / self.n_labelled if self.n_labelled else None

    @property
    def estimated_accuracy(self) -> float | None:
        return self.expected_correct / self.n_estimated if self.n_estimated else None


def _prediction_key(dtype: str) -> str:
    """SQL giving ``class_key(prediction)`` for a prediction column of ``dtype``."""
    kind = dtype.upper()
    if kind == "BOOLEAN":
        return "CASE WHEN prediction THEN 'True' ELSE 'False' END"
    if any(t in kind for t in ("DOUBLE", "FLOAT", "DECIMAL")):
        return (
            "CASE WHEN isnan(prediction) THEN NULL WHEN prediction = trunc(prediction) "
            "THEN CAST(CAST(prediction AS HUGEINT) AS VARCHAR) ELSE CAST(prediction AS VARCHAR) END"
        )
    return "CAST(prediction AS VARCHAR)"


def bucket_accuracy(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    step: timedelta,
    count: int,
    version: int | None = None,
) -> list[BucketAccuracy]:
    """The accuracy sums of ``model``'s predictions in each of ``count`` buckets of ``step``."""
    until = since + count * step
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return []
    labels = _feedback_files(store, [model], first - _CLOCK_SLACK)
    with _translated(store), store.connect() as con:
        names = _columns(con, files)
        if "prediction" not in names:
            return []
        types = dict(
            (row[0], str(row[1]))
            for row in con.execute(f"DESCRIBE SELECT prediction FROM {_SCAN}", [files]).fetchall()
        )
        probas = [n for n in names if n.startswith(PROBA_PREFIX)]
        key = _prediction_key(types.get("prediction", ""))
        if probas:
            quoted = [_q(p) for p in probas]
            chosen = " ".join(
                f"WHEN k = '{p[len(PROBA_PREFIX) :].replace(chr(39), chr(39) * 2)}' THEN {_q(p)}"
                for p in probas
            )
            present = " AND ".join(f"{c} IS NOT NULL AND NOT isnan({c})" for c in quoted)
            expected = f"CASE {chosen} ELSE greatest({', '.join(quoted)}) END"
        else:
            present, expected = "false", "0.0"
        origin = int(since.timestamp() * 1_000_000)
        width = int(step.total_seconds() * 1_000_000)
        version_filter = "" if version is None else " AND version = ?"
        wanted = ", ".join(
            _q(n) for n in names if n in ("request_id", "row", "timestamp", "variant", *probas)
        )
        bucket = f"CAST(floor((epoch_us(timestamp) - {origin}) / {width}) AS BIGINT)"
        variant = ", p.variant" if "variant" in names else ""
        # Every row counts towards the totals; only labelled rows need the claim (which of
        # several predictions of one (request_id, row[, variant]) a label joins), so the
        # window function runs over those alone.
        sql = f"""
            WITH p AS (
              SELECT {wanted}, {key} AS k, {bucket} AS b,
                     {present} AS present, {expected} AS expected
              FROM {_SCAN} WHERE timestamp >= ? AND timestamp < ?{version_filter}
              {dedupe_clause("predictions", files)}),
            f AS ({newest_labels(bool(labels))}),
            lab AS (
              SELECT p.b, p.k, f.label, row_number() OVER (
                PARTITION BY p.request_id, p."row"{variant} ORDER BY p.timestamp DESC) = 1 AS claim
              FROM p JOIN f ON p.request_id = f.request_id AND p."row" = f."row"),
            totals AS (
              SELECT b, count(*) AS n, count(*) FILTER (WHERE present) AS estimated,
                     coalesce(sum(expected) FILTER (WHERE present), 0.0) AS expected_correct
              FROM p GROUP BY b),
            judged AS (
              SELECT b, count(*) AS labelled, count(*) FILTER (WHERE label = k) AS correct
              FROM lab WHERE claim GROUP BY b)
            SELECT totals.b, n, coalesce(labelled, 0), coalesce(correct, 0), estimated,
                   expected_correct
            FROM totals LEFT JOIN judged ON totals.b = judged.b ORDER BY totals.b
        """
        params: list[object] = [files, since, until]
        if version is not None:
            params.append(version)
        if labels:
            params.append(labels)
        rows = con.execute(sql, params).fetchall()
    return [
        BucketAccuracy(int(b), int(n), int(lab), int(ok), int(est), float(exp))
        for b, n, lab, ok, est, exp in rows
        if 0 <= int(b) < count
    ]
