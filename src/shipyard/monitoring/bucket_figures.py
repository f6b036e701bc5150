"""Accuracy figures per time bucket, aggregated inside DuckDB: for dashboards over
millions of logged rows.

:func:`~shipyard.monitoring.performance.performance` reads every labelled row
into pandas to compute every metric (F1, ROC AUC, their CBPE estimates...);
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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from shipyard.monitoring.calibration import Calibration
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
    #: Of the estimated rows, those whose probabilities went through their version's
    #: stored calibration (the rest were read raw).
    n_calibrated: int = 0

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
    calibration: Callable[[str, int], Calibration | None] | None = None,
) -> list[BucketAccuracy]:
    """The accuracy sums of ``model``'s predictions in each of ``count`` buckets of ``step``.

    ``calibration`` gives each version's stored CBPE calibration, as
    :func:`~shipyard.monitoring.performance.performance` takes it: the rows of a
    version that has one are estimated on calibrated probabilities (in numpy:
    the maps are piecewise-linear curves), the others in SQL as logged.
    """
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
        window: list[object] = [files, since, until] + ([] if version is None else [version])
        scan = (
            f"{_SCAN} WHERE timestamp >= ? AND timestamp < ?{version_filter} "
            f"{dedupe_clause('predictions', files)}"
        )
        calibrated = (
            _calibrations(con, scan, window, model, probas, calibration)
            if probas and calibration is not None and "version" in names
            else {}
        )
        if calibrated:
            # Those versions' rows are estimated in numpy, through their calibration.
            listed = ", ".join(str(int(v)) for v in calibrated)
            present = f"({present}) AND version NOT IN ({listed})"
        # Every row counts towards the totals; only labelled rows need the claim (which of
        # several predictions of one (request_id, row[, variant]) a label joins), so the
        # window function runs over those alone.
        sql = f"""
            WITH p AS (
              SELECT {wanted}, {key} AS k, {bucket} AS b,
                     {present} AS present, {expected} AS expected
              FROM {scan}),
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
        params: list[object] = list(window)
        if labels:
            params.append(labels)
        rows = con.execute(sql, params).fetchall()
        extra = (
            _calibrated_sums(con, scan, window, bucket, key, probas, calibrated)
            if calibrated
            else {}
        )
    out = []
    for b, n, lab, ok, est, exp in rows:
        i = int(b)
        if not 0 <= i < count:
            continue
        n_cal, exp_cal = extra.get(i, (0, 0.0))
        out.append(
            BucketAccuracy(
                i, int(n), int(lab), int(ok), int(est) + n_cal, float(exp) + exp_cal, n_cal
            )
        )
    return out


def _calibrations(
    con: Any,
    scan: str,
    params: list[object],
    model: str,
    probas: list[str],
    calibration: Callable[[str, int], Calibration | None],
) -> dict[int, Calibration]:
    """The stored calibration of each version logged in the window that has one (for the
    logged classes)."""
    classes = sorted(p[len(PROBA_PREFIX) :] for p in probas)
    versions = con.execute(
        f"SELECT DISTINCT version FROM (SELECT version FROM {scan}) AS w WHERE version IS NOT NULL",
        params,
    ).fetchall()
    found = {}
    for (v,) in versions:
        fitted = calibration(model, int(v))
        if fitted is not None and sorted(fitted.classes) == classes:
            found[int(v)] = fitted
    return found


def _calibrated_sums(
    con: Any,
    scan: str,
    params: list[object],
    bucket: str,
    key: str,
    probas: list[str],
    calibrated: dict[int, Calibration],
) -> dict[int, tuple[int, float]]:
    """Per bucket: rows of calibrated versions with every probability, and the sum of
    their calibrated probability of the predicted class (CBPE's expected correct)."""
    listed = ", ".join(str(v) for v in calibrated)
    present = " AND ".join(f"{_q(c)} IS NOT NULL AND NOT isnan({_q(c)})" for c in probas)
    frame = con.execute(
        f"SELECT {bucket} AS b, version, {key} AS k, {', '.join(_q(c) for c in probas)} "
        f"FROM (SELECT * FROM {scan}) AS w WHERE version IN ({listed}) AND {present}",
        params,
    ).fetchnumpy()
    sums: dict[int, tuple[int, float]] = {}
    if not len(frame["b"]):
        return sums
    buckets = np.asarray(frame["b"], dtype=np.int64)
    versions = np.asarray(frame["version"], dtype=np.int64)
    keys = np.asarray(frame["k"], dtype=object)
    for v, fitted in calibrated.items():
        rows = versions == v
        if not rows.any():
            continue
        order = [PROBA_PREFIX + c for c in fitted.classes]
        proba = np.column_stack([np.asarray(frame[c], dtype=np.float64)[rows] for c in order])
        mapped = fitted.transform(proba)
        index = {c: j for j, c in enumerate(fitted.classes)}
        predicted = np.array([index.get(k, -1) for k in keys[rows]], dtype=np.int64)
        chosen = np.where(predicted >= 0, predicted, mapped.argmax(axis=1))
        expected = mapped[np.arange(len(mapped)), chosen]
        at = buckets[rows]
        for b in np.unique(at):
            mine = at == b
            n, total = sums.get(int(b), (0, 0.0))
            sums[int(b)] = (n + int(mine.sum()), total + float(expected[mine].sum()))
    return sums
