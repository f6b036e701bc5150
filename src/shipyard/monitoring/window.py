"""A window of the prediction log summarized in bounded memory, for the monitor job.

However many rows a window holds (a batch job may log millions in minutes),
nothing here loads them: DuckDB counts them, draws a uniform sample of at
most ``sample_rows`` for the drift tests and the quantiles of predicted
values (all the rows when the window is smaller), and sums what label
coverage, realized accuracy and the CBPE estimate need, grouped by predicted
class. Each query runs on one connection bounded by ``memory_limit_mb``
(DuckDB spills to disk beyond it) and ``threads``.

Labels join as everywhere else (:mod:`.queries`): the newest label of a row,
one prediction per ``(request_id, row, variant)``.

>>> summary = summarize_window(store, "iris", since=start, until=end,
...                            classifier=True)                       # doctest: +SKIP
>>> summary.n_rows, len(summary.inputs), summary.realized_accuracy    # doctest: +SKIP
(10000000, 50000, 0.93)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb
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
    _label_claim,
    _q,
    _translated,
    newest_labels,
    row_filter,
)
from shipyard.monitoring.records import INPUT_PREFIX, PROBA_PREFIX, class_key
from shipyard.monitoring.segments import SegmentStore

__all__ = ["WindowLimits", "WindowSummary", "sample_inputs", "summarize_window"]


@dataclass(frozen=True)
class WindowLimits:
    """What one window summary may use: rows sampled, DuckDB memory (MB) and threads."""

    sample_rows: int = 50_000
    memory_limit_mb: int = 128
    threads: int = 1
    seed: int = 0


@dataclass(frozen=True)
class WindowSummary:
    """Counts and a uniform sample of one window (see the module doc).

    ``inputs`` holds the sampled rows' features under their own names and
    ``predictions`` their predicted values. ``correct`` counts labelled rows
    whose label is the predicted class (classifiers only); ``expected_correct``
    sums the probability of the predicted class over ``n_scored`` rows with
    probabilities (CBPE).
    """

    n_rows: int = 0
    inputs: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    n_labelled: int = 0
    correct: int | None = None
    expected_correct: float | None = None
    n_scored: int = 0
    calibrated: bool = False

    @property
    def coverage(self) -> float | None:
        """Share of the window's predictions that have a label."""
        return self.n_labelled / self.n_rows if self.n_rows else None

    @property
    def realized_accuracy(self) -> float | None:
        """Accuracy on the labelled rows (None without labels, or for a regressor)."""
        if self.correct is None or not self.n_labelled:
            return None
        return self.correct / self.n_labelled

    @property
    def estimated_accuracy(self) -> float | None:
        """CBPE: the mean (calibrated) probability of the predicted class (None without
        probabilities)."""
        if self.expected_correct is None or not self.n_scored:
            return None
        return self.expected_correct / self.n_scored


def summarize_window(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    variant: str | None = None,
    deployment: str | None = None,
    classifier: bool,
    limits: WindowLimits | None = None,
    calibration: Calibration | None = None,
) -> WindowSummary:
    """Summarize the rows of ``model`` (``version``, answered as ``variant`` of
    ``deployment``) logged in ``[since, until)``.

    ``deployment`` keeps only the rows a server of that deployment stamped with its
    name: not a batch job's (``shipyard predict`` logs them as ``primary`` with no
    deployment), not direct traffic, not another deployment's of the same version.
    ``classifier`` says whether predictions are classes (compared with labels
    for accuracy) or values (a regressor: only label coverage is counted).
    ``calibration`` maps the logged probabilities before CBPE reads them.
    """
    limits = limits or WindowLimits()
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return WindowSummary()
    labels = _feedback_files(store, [model], first - _CLOCK_SLACK)
    connection = store.connect(memory_limit_mb=limits.memory_limit_mb, threads=limits.threads)
    with _translated(store), connection as con:
        names = _columns(con, files)
        window = _Window(con, files, names, since, until, version, variant, deployment)
        n_rows = window.count()
        if not n_rows:
            return WindowSummary()
        inputs, predictions = window.sample(limits)
        n_labelled, correct = window.labels(labels, classifier=classifier)
        if calibration is not None and not window.fits(calibration):
            calibration = None  # logged with other classes: the raw probabilities it is
        expected, scored = window.expected_correct(calibration) if classifier else (None, 0)
    return WindowSummary(
        n_rows=n_rows,
        inputs=inputs,
        predictions=predictions,
        n_labelled=n_labelled,
        correct=correct,
        expected_correct=expected,
        n_scored=scored,
        calibrated=calibration is not None and expected is not None,
    )


def sample_inputs(
    store: SegmentStore,
    model: str,
    *,
    since: datetime,
    until: datetime,
    version: int | None = None,
    limits: WindowLimits | None = None,
) -> tuple[int, pd.DataFrame]:
    """The window's row count and a uniform sample of at most ``limits.sample_rows`` of its
    inputs (every row when fewer), under their own names: what ``shipyard drift --window``
    tests, read by DuckDB in bounded memory however many segments the window spans."""
    limits = limits or WindowLimits()
    first, last = _days(since, until)
    files = store.files("predictions", model, first=first, last=last)
    if not files:
        return 0, pd.DataFrame()
    connection = store.connect(memory_limit_mb=limits.memory_limit_mb, threads=limits.threads)
    with _translated(store), connection as con:
        names = _columns(con, files)
        window = _Window(con, files, names, since, until, version)
        n_rows = window.count()
        if not n_rows:
            return 0, pd.DataFrame()
        inputs, _ = window.sample(limits)
    return n_rows, inputs


class _Window:
    """The queries of one summary, over the window's rows as a ``WITH p AS (...)``."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        files: list[str],
        names: list[str],
        since: datetime,
        until: datetime,
        version: int | None,
        variant: str | None = None,
        deployment: str | None = None,
    ) -> None:
        self.con = con
        self.names = names
        filters, params = row_filter(names, version, deployment)
        self.params: list[object] = [files, since, until, *params]
        if variant is not None:  # no variant column: no row is that variant's
            filters += " AND variant = ?" if "variant" in names else " AND FALSE"
            if "variant" in names:
                self.params.append(variant)
        self.where = f"WHERE timestamp >= ? AND timestamp < ?{filters}"
        self.dedupe = dedupe_clause("predictions", files)

    def _rows(self, columns: list[str]) -> str:
        wanted = ", ".join(_q(n) for n in columns if n in self.names)
        return f"SELECT {wanted} FROM {_SCAN} {self.where}{self.dedupe}"

    def count(self) -> int:
        sql = f"SELECT count(*) FROM ({self._rows(['request_id', 'row', 'timestamp'])})"
        found = self.con.execute(sql, self.params).fetchone()
        return int(found[0]) if found else 0

    def sample(self, limits: WindowLimits) -> tuple[pd.DataFrame, pd.Series]:
        features = [n for n in self.names if n.startswith(INPUT_PREFIX)]
        columns = [*features, "prediction"]
        # The reservoir keeps at most sample_rows rows whatever the window holds.
        sql = (
            f"SELECT * FROM ({self._rows(columns)}) "
            f"USING SAMPLE reservoir({int(limits.sample_rows)} ROWS) REPEATABLE ({limits.seed})"
        )
        frame = self.con.execute(sql, self.params).df()
        predictions = frame.pop("prediction") if "prediction" in frame else pd.Series(dtype=object)
        inputs = frame.rename(columns=lambda c: c[len(INPUT_PREFIX) :])
        return inputs, predictions

    def labels(self, label_files: list[str], *, classifier: bool) -> tuple[int, int | None]:
        """Labelled rows, and how many of them were predicted right (classifiers)."""
        if not label_files:
            return 0, 0 if classifier else None
        keys = ["request_id", "row", "timestamp", "variant", "prediction"]
        claimed = (
            f"WITH p AS ({self._rows(keys)}), f AS ({newest_labels(True)}) "
            "SELECT p.prediction, f.label FROM p JOIN f "
            'ON p.request_id = f.request_id AND p."row" = f."row" '
            f"QUALIFY {_label_claim(self.names, 'p.')}"
        )
        params = [*self.params, label_files]
        if not classifier:  # a regressor's values are not grouped: there may be millions
            found = self.con.execute(f"SELECT count(*) FROM ({claimed})", params).fetchone()
            return (int(found[0]) if found else 0), None
        groups = self.con.execute(
            f"SELECT prediction, label, count(*) FROM ({claimed}) GROUP BY ALL", params
        ).fetchall()
        n = sum(int(c) for _, _, c in groups)
        correct = sum(int(c) for p, label, c in groups if class_key(p) == label)
        return n, correct

    def fits(self, calibration: Calibration) -> bool:
        """Whether the logged probability columns are the calibration's classes."""
        logged = [n[len(PROBA_PREFIX) :] for n in self.names if n.startswith(PROBA_PREFIX)]
        return sorted(logged) == sorted(calibration.classes)

    def expected_correct(self, calibration: Calibration | None) -> tuple[float | None, int]:
        """CBPE's sum of the predicted class's probability, and the rows it covers.

        Without a calibration DuckDB sums per predicted class. With one, every
        row's probabilities are mapped first, so the rows stream through in
        batches of ``_BATCH_ROWS`` (the sum never needs them all at once).
        """
        proba = [n for n in self.names if n.startswith(PROBA_PREFIX)]
        if not proba:
            return None, 0
        classes = [n[len(PROBA_PREFIX) :] for n in proba]
        quoted = [_q(n) for n in proba]
        # A row with a missing probability is left out, as cbpe.expected_accuracy does.
        # isfinite, not NOT isnan: DuckDB prunes the latter with Parquet statistics,
        # which ignore NaN, and lets NaN rows through.
        complete = " AND ".join(f"isfinite({c})" for c in quoted)
        if calibration is not None and sorted(classes) == sorted(calibration.classes):
            return self._calibrated_sum(calibration, classes, quoted, complete)
        sums = ", ".join(f"sum({c})" for c in quoted)
        sql = (
            f"SELECT prediction, count(*), {sums}, sum(greatest({', '.join(quoted)})) "
            f"FROM ({self._rows(['prediction', *proba])}) WHERE {complete} GROUP BY prediction"
        )
        expected, scored = 0.0, 0
        for prediction, n, *values in self.con.execute(sql, self.params).fetchall():
            key = class_key(prediction)
            # A prediction outside the probability columns counts with its largest one.
            expected += values[classes.index(key)] if key in classes else values[-1]
            scored += int(n)
        return expected, scored

    def _calibrated_sum(
        self, calibration: Calibration, classes: list[str], quoted: list[str], complete: str
    ) -> tuple[float | None, int]:
        # The calibration's column order, whatever order the log's columns came in.
        ordered = [quoted[classes.index(c)] for c in calibration.classes]
        inner = self._rows(["prediction", *[PROBA_PREFIX + c for c in classes]])
        sql = f"SELECT prediction, {', '.join(ordered)} FROM ({inner}) WHERE {complete}"
        result = self.con.execute(sql, self.params)
        index = {c: j for j, c in enumerate(calibration.classes)}
        expected, scored = 0.0, 0
        while True:
            batch = result.fetch_df_chunk(_BATCH_VECTORS)
            if batch.empty:
                break
            mapped = calibration.transform(batch.iloc[:, 1:].to_numpy(np.float64))
            chosen = np.array(
                [index.get(class_key(p) or "", -1) for p in batch["prediction"].tolist()]
            )
            chosen = np.where(chosen >= 0, chosen, mapped.argmax(axis=1))
            expected += float(mapped[np.arange(len(mapped)), chosen].sum())
            scored += len(batch)
        return expected, scored


#: DuckDB vectors (2048 rows each) per batch of the calibrated CBPE sum: ~100k rows.
_BATCH_VECTORS = 50
