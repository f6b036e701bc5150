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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

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
    row_filter,
)
from shipyard.monitoring.records import PROBA_PREFIX
from shipyard.monitoring.segments import SegmentStore

__all__ = ["BucketAccuracy", "VariantAccuracy", "bucket_accuracy", "variant_accuracy"]


class _Ratios:
    """Coverage and accuracies from the sums a bucket or a variant holds."""

    n_predictions: int
    n_labelled: int
    n_correct: int
    n_estimated: int
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


@dataclass(frozen=True)
class BucketAccuracy(_Ratios):
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


@dataclass(frozen=True)
class VariantAccuracy(_Ratios):
    """Sums over a whole range for one variant serving one version."""

    variant: str
    version: int | None
    n_predictions: int
    n_labelled: int
    n_correct: int
    n_estimated: int
    expected_correct: float
    n_calibrated: int
    median_label_delay_seconds: float | None
    #: True when the version has a stored calibration (its estimates went through it).
    version_calibrated: bool


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
    deployment: str | None = None,
) -> list[BucketAccuracy]:
    """The accuracy sums of ``model``'s predictions in each of ``count`` buckets of ``step``.

    ``calibration`` gives each version's stored CBPE calibration, as
    :func:`~shipyard.monitoring.performance.performance` takes it: the rows of a
    version that has one are estimated on calibrated probabilities (in numpy:
    the maps are piecewise-linear curves), the others in SQL as logged.
    """
    origin = int(since.timestamp() * 1_000_000)
    width = int(step.total_seconds() * 1_000_000)
    bucket = f"CAST(floor((epoch_us(timestamp) - {origin}) / {width}) AS BIGINT)"
    found = _sums(
        store,
        model,
        since=since,
        until=since + count * step,
        version=version,
        calibration=calibration,
        keys=lambda names: [bucket],
        deployment=deployment,
    )
    out = []
    for group in found:
        i = int(group.key[0])
        if 0 <= i < count:
            out.append(
                BucketAccuracy(
                    i,
                    group.n,
                    group.labelled,
                    group.correct,
                    group.estimated,
                    group.expected_correct,
                    group.calibrated,
                )
            )
    return sorted(out, key=lambda b: b.index)


def variant_accuracy(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    calibration: Callable[[str, int], Calibration | None] | None = None,
    deployment: str | None = None,
) -> list[VariantAccuracy]:
    """The same sums over ``since`` to ``until`` as one range, per (variant, version) pair,
    in order of first appearance (the pairs of
    :attr:`~shipyard.monitoring.performance.PerformanceReport.variants`); [] when the
    log has no ``variant`` column. ``deployment`` keeps only the rows its servers
    logged (:func:`~shipyard.monitoring.queries.row_filter`)."""

    def keys(names: list[str]) -> list[str] | None:
        if "variant" not in names:
            return None
        # None as pandas' astype(str) writes it, as performance() names the variant.
        return [
            "coalesce(CAST(variant AS VARCHAR), 'None')",
            "version" if "version" in names else "NULL::BIGINT",
        ]

    found = _sums(
        store,
        model,
        since=since,
        until=until,
        version=version,
        calibration=calibration,
        keys=keys,
        deployment=deployment,
    )
    return [
        VariantAccuracy(
            str(g.key[0]),
            None if g.key[1] is None else int(g.key[1]),
            g.n,
            g.labelled,
            g.correct,
            g.estimated,
            g.expected_correct,
            g.calibrated,
            g.median_delay,
            g.version_calibrated,
        )
        for g in found
    ]


@dataclass(frozen=True)
class _Group:
    """One group's sums (``key``: the values of its key expressions)."""

    key: tuple[Any, ...]
    n: int
    labelled: int
    correct: int
    estimated: int
    expected_correct: float
    calibrated: int
    median_delay: float | None
    #: Whether the group's version has a stored calibration (for the logged classes).
    version_calibrated: bool


def _sums(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None,
    calibration: Callable[[str, int], Calibration | None] | None,
    keys: Callable[[list[str]], list[str] | None],
    deployment: str | None = None,
) -> list[_Group]:
    """The accuracy sums of the rows from ``since`` to ``until`` grouped by the SQL
    expressions ``keys`` gives for the log's columns (None: no groups), in order of
    each group's first row."""
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return []
    labels = _feedback_files(store, [model], first - _CLOCK_SLACK)
    with _translated(store), store.connect() as con:
        names = _columns(con, files)
        if "prediction" not in names:
            return []
        exprs = keys(list(names))
        if exprs is None:
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
        filters, filter_params = row_filter(names, version, deployment)
        wanted = ", ".join(
            _q(n) for n in names if n in ("request_id", "row", "timestamp", "variant", *probas)
        )
        g = [f"g{i}" for i in range(len(exprs))]
        groups = ", ".join(f"{e} AS {n}" for e, n in zip(exprs, g, strict=True))
        listed_g = ", ".join(g)
        p_g = ", ".join(f"p.{n}" for n in g)
        on = " AND ".join(f"totals.{n} IS NOT DISTINCT FROM judged.{n}" for n in g)
        variant = ", p.variant" if "variant" in names else ""
        window: list[object] = [files, since, until, *filter_params]
        scan = (
            f"{_SCAN} WHERE timestamp >= ? AND timestamp < ?{filters} "
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
              SELECT {wanted}, {key} AS k, {groups},
                     {present} AS present, {expected} AS expected
              FROM {scan}),
            f AS ({newest_labels(bool(labels))}),
            lab AS (
              SELECT {p_g}, p.k, f.label,
                     (epoch_us(f.labelled_at) - epoch_us(p.timestamp)) / 1e6 AS delay,
                     row_number() OVER (
                PARTITION BY p.request_id, p."row"{variant} ORDER BY p.timestamp DESC) = 1 AS claim
              FROM p JOIN f ON p.request_id = f.request_id AND p."row" = f."row"),
            totals AS (
              SELECT {listed_g}, count(*) AS n, count(*) FILTER (WHERE present) AS estimated,
                     coalesce(sum(expected) FILTER (WHERE present), 0.0) AS expected_correct,
                     min(timestamp) AS first_seen
              FROM p GROUP BY {listed_g}),
            judged AS (
              SELECT {listed_g}, count(*) AS labelled, count(*) FILTER (WHERE label = k) AS correct,
                     median(delay) AS delay
              FROM lab WHERE claim GROUP BY {listed_g})
            SELECT {", ".join(f"totals.{n}" for n in g)}, n, coalesce(labelled, 0),
                   coalesce(correct, 0), estimated, expected_correct, judged.delay
            FROM totals LEFT JOIN judged ON {on}
            ORDER BY first_seen, {", ".join(f"totals.{n}" for n in g)}
        """
        params: list[object] = list(window)
        if labels:
            params.append(labels)
        rows = con.execute(sql, params).fetchall()
        extra = (
            _calibrated_sums(con, scan, window, exprs, key, probas, calibrated)
            if calibrated
            else {}
        )
    out = []
    width = len(exprs)
    for row in rows:
        group = tuple(row[:width])
        n, lab, ok, est, exp, delay = row[width:]
        n_cal, exp_cal = extra.get(group, (0, 0.0))
        version_of = group[1] if width == 2 else None
        out.append(
            _Group(
                group,
                int(n),
                int(lab),
                int(ok),
                int(est) + n_cal,
                float(exp) + exp_cal,
                n_cal,
                None if delay is None else float(delay),
                version_of is not None and int(version_of) in calibrated,
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
    exprs: list[str],
    key: str,
    probas: list[str],
    calibrated: dict[int, Calibration],
) -> dict[tuple[Any, ...], tuple[int, float]]:
    """Per group (the values of ``exprs``): rows of calibrated versions with every
    probability, and the sum of their calibrated probability of the predicted class
    (CBPE's expected correct)."""
    listed = ", ".join(str(v) for v in calibrated)
    present = " AND ".join(f"{_q(c)} IS NOT NULL AND NOT isnan({_q(c)})" for c in probas)
    groups = ", ".join(f"{e} AS g{i}" for i, e in enumerate(exprs))
    frame = con.execute(
        f"SELECT {groups}, version, {key} AS k, {', '.join(_q(c) for c in probas)} "
        f"FROM (SELECT * FROM {scan}) AS w WHERE version IN ({listed}) AND {present}",
        params,
    ).fetchnumpy()
    sums: dict[tuple[Any, ...], tuple[int, float]] = {}
    if not len(frame["version"]):
        return sums
    # One integer code per group, so numpy adds each group's rows up.
    codes, uniques = pd.MultiIndex.from_arrays(
        [np.asarray(frame[f"g{i}"], dtype=object) for i in range(len(exprs))]
    ).factorize()
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
        at = codes[rows]
        for code in np.unique(at):
            mine = at == code
            group = tuple(uniques[int(code)])
            n, total = sums.get(group, (0, 0.0))
            sums[group] = (n + int(mine.sum()), total + float(expected[mine].sum()))
    return sums
