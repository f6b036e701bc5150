"""The prediction log: every served prediction, written in the background, read by time window.

:meth:`PredictionLog.submit` (rows) and :meth:`PredictionLog.observe` (a whole
answered request, the serving observer seam) only append to a bounded
in-memory queue and return: a request never waits for a disk or for S3. One
background thread per process writes what is queued as Parquet segments
(:mod:`~shipyard.monitoring.segments`), at the latest ``flush_interval``
seconds after a row arrived, sooner when ``batch_rows`` rows are waiting.
So a crash (``kill -9``) loses at most the rows of the last interval, and
:meth:`close` (called at shutdown and at interpreter exit) writes the rest.

When the writer falls behind and the queue holds ``max_queue_rows`` rows,
new rows are dropped and counted (``shipyard_prediction_log_dropped_total``):
predictions go on, and the loss is visible.

Ground-truth labels (``POST /feedback``) go through the same queue and writer
(:meth:`PredictionLog.submit_labels`): a flood of label posts makes one
feedback segment per flush, not one file per post. A batch of labels is
queued whole or refused whole when the queue is full (the caller tells its
client to retry), never cut; once the log is closed (a server draining at
shutdown) labels are written at once instead, in the caller's thread.

Every process that uses a log gets its own queue and writer thread, even when
the log object was created before a fork (uvicorn workers); segments carry
the pid in their names, so workers never write the same file.

>>> import tempfile
>>> from datetime import UTC, datetime
>>> log = PredictionLog(SegmentStore(tempfile.mkdtemp()))
>>> log.submit(PredictionRecord(
...     request_id="r1", timestamp=datetime.now(UTC), model="iris", version=1,
...     inputs={"x": 1.0}, prediction=0))
1
>>> log.close()
>>> len(log.read("iris", since="1h"))
1
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.config import Settings
from shipyard.errors import InvalidInputError, StoreError
from shipyard.monitoring.compaction import Compaction, compact
from shipyard.monitoring.durations import parse_duration, parse_instant
from shipyard.monitoring.queries import daily_counts, read_window
from shipyard.monitoring.records import (
    INPUT_PREFIX,
    LabelBatch,
    LogStats,
    PredictionBatch,
    PredictionEventLike,
    PredictionRecord,
    events_table,
    records_table,
)
from shipyard.monitoring.segments import Partition, SegmentSink, SegmentStore
from shipyard.registry.refs import check_model_name

__all__ = ["DEFAULT_RETENTION", "PredictionLog", "open_prediction_log"]

logger = logging.getLogger("shipyard.monitoring")
#: Slack when settling a batch job by the day it started: its workers' clocks may lag.
_CLOCK_MARGIN = timedelta(days=1)

DEFAULT_RETENTION = timedelta(days=30)
# A queued item: a list of rows, one answered request (columns) or a batch of
# labels, with its row count.
_Item = tuple[list[PredictionRecord] | PredictionEventLike | LabelBatch, int]


class PredictionLog:
    """Background, batched, bounded writer of prediction rows, plus reads of what it wrote.

    ``store`` is where segments live and are read from; ``sink`` is where the
    writer sends them (default: the store itself; tests inject a slow one).
    ``clock`` gives the time for relative windows and retention. The writer
    thread's flush interval is paced on the real timer: it is a real wait.
    """

    def __init__(
        self,
        store: SegmentStore,
        *,
        sink: SegmentSink | None = None,
        flush_interval: float = 1.0,
        batch_rows: int = 5_000,
        max_queue_rows: int = 100_000,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not flush_interval > 0:
            raise InvalidInputError(f"flush_interval must be positive, got {flush_interval}.")
        if batch_rows < 1 or max_queue_rows < 1:
            raise InvalidInputError(
                f"batch_rows and max_queue_rows must be at least 1, "
                f"got {batch_rows} and {max_queue_rows}."
            )
        self.store = store
        self.sink: SegmentSink = sink if sink is not None else store
        self.flush_interval = float(flush_interval)
        self.batch_rows = batch_rows
        self.max_queue_rows = max_queue_rows
        self.retention = retention
        self.clock = clock
        self._reset()
        ref = weakref.ref(self)
        # A forked worker must not inherit the parent's queue, lock or (dead) thread.
        os.register_at_fork(after_in_child=lambda: _call(ref, "_reset"))
        # Flush at interpreter exit; the writer thread is a daemon and would just vanish.
        atexit.register(_call, ref, "close")

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Item] = []
        self._pending_rows = 0
        self._oldest: float | None = None  # monotonic time the oldest pending row arrived
        self._in_flight_rows = 0
        self._accepted = 0  # rows of every kind: flush() waits for all of them
        self._processed = 0  # accepted rows that were written or failed
        self._labels_accepted = 0
        self._labels_written = 0
        self._labels_dropped = 0
        self._flush_target = 0
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self._closing = False
        self._warned_closed = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"PredictionLog({self.store.url!r})"

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------

    def submit(self, records: PredictionRecord | Iterable[PredictionRecord]) -> int:
        """Queue rows for writing without waiting; return how many were accepted.

        Rows beyond the queue's capacity are dropped and counted, never raised.
        """
        rows = [records] if isinstance(records, PredictionRecord) else list(records)
        return self._enqueue(rows, len(rows))

    #: The serving observer seam may hand over the validated matrix and its column
    #: names (``input_columns``) instead of a frame: :func:`events_table` takes both.
    takes_arrays = True

    def observe(self, event: PredictionEventLike) -> None:
        """The serving observer seam: queue one answered request (all its rows), at once.

        The event is converted later, in the writer thread, so its arrays must
        not be changed after this call (the server makes fresh ones per request).
        """
        self._enqueue(event, len(event.predictions))

    def submit_labels(self, batch: LabelBatch) -> bool:
        """Queue a batch of labels for writing without waiting.

        All of it is queued, or none (False) when the queue is full: a label is
        never cut off silently, the caller can say "retry". A closed log writes
        them now instead (StoreError if that fails).
        """
        n = batch.table.num_rows
        if n == 0 or self._enqueue(batch, n) == n:
            return True
        with self._cond:
            closing = self._closing
        if not closing:
            return False
        self.sink.write_segment("feedback", batch.model, batch.day, batch.table)
        with self._cond:
            self._labels_written += n
        return True

    def _enqueue(
        self, item: list[PredictionRecord] | PredictionEventLike | LabelBatch, n: int
    ) -> int:
        if n == 0:
            return 0
        labels = isinstance(item, LabelBatch)
        with self._cond:
            if self._closing and labels:
                return 0
            if self._closing:
                self._dropped += n
                if not self._warned_closed:  # once: a busy server would flood the log
                    self._warned_closed = True
                    logger.warning(
                        "Prediction log %s is closed; further rows are dropped and counted",
                        self.store.url,
                    )
                return 0
            room = self.max_queue_rows - self._pending_rows - self._in_flight_rows
            if room < n and labels:
                return 0
            if room < n:
                if room <= 0 or not isinstance(item, list):
                    self._dropped += n
                    return 0
                self._dropped += n - room
                item, n = item[:room], room
            if self._thread is None:
                self._start()
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append((item, n))
            self._pending_rows += n
            self._accepted += n
            if labels:
                self._labels_accepted += n
            # Wake the writer for a new deadline or a full batch; otherwise let it sleep.
            if len(self._pending) == 1 or self._pending_rows >= self.batch_rows:
                self._cond.notify_all()
            return n

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"shipyard-prediction-log-{os.getpid()}", daemon=True
        )
        self._thread.start()

    def _due(self) -> bool:
        if not self._pending:
            return False
        if self._closing or self._flush_target > self._processed:
            return True
        if self._pending_rows >= self.batch_rows:
            return True
        assert self._oldest is not None
        return time.monotonic() >= self._oldest + self.flush_interval

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closing and not self._pending:
                        return
                    timeout = None
                    if self._oldest is not None:
                        timeout = max(0.0, self._oldest + self.flush_interval - time.monotonic())
                    self._cond.wait(timeout)
                items, rows = self._pending, self._pending_rows
                self._pending, self._pending_rows, self._oldest = [], 0, None
                self._in_flight_rows = rows
            written, labels_written = self._write_items(items)
            label_rows = sum(n for payload, n in items if isinstance(payload, LabelBatch))
            with self._cond:
                self._in_flight_rows = 0
                self._processed += rows
                self._written += written
                self._dropped += rows - label_rows - written
                self._labels_written += labels_written
                self._labels_dropped += label_rows - labels_written
                self._cond.notify_all()

    def _write_items(self, items: list[_Item]) -> tuple[int, int]:
        """Write queued items grouped by model and day; return the prediction rows
        and the label rows written."""
        by_model: dict[str, tuple[list[PredictionRecord], list[Any]]] = defaultdict(
            lambda: ([], [])
        )
        labels: dict[tuple[str, date], list[pa.Table]] = defaultdict(list)
        for payload, _ in items:
            if isinstance(payload, LabelBatch):
                labels[(payload.model, payload.day)].append(payload.table)
            elif isinstance(payload, list):
                for record in payload:
                    by_model[record.model][0].append(record)
            else:
                by_model[payload.model][1].append(payload)
        written = 0
        for model, (records, events) in by_model.items():
            parts = []
            if records:
                parts += self._convert(model, records_table, records)
            if events:
                parts += self._convert(model, events_table, events)
            if not parts:
                continue
            try:
                written += self._write_table(model, _concat(parts), strict=False)
            except Exception:
                logger.exception("Could not write predictions of %r to %s", model, self.store.url)
                self._count_error()
        return written, self._write_labels(labels)

    def _write_labels(self, labels: dict[tuple[str, date], list[pa.Table]]) -> int:
        """One feedback segment per model and day, whatever the number of posts."""
        written = 0
        for (model, day), tables in labels.items():
            table = _concat(tables)
            try:
                self.sink.write_segment("feedback", model, day, table)
            except Exception:
                logger.exception("Could not write labels of %r to %s", model, self.store.url)
                self._count_error()
                continue
            written += table.num_rows
        return written

    def _convert(
        self, model: str, convert: Callable[[list[Any]], pa.Table], items: list[Any]
    ) -> list[pa.Table]:
        """Convert in bulk; if that fails, one by one, so a bad item loses only its rows."""
        try:
            return [convert(items)]
        except Exception:
            if len(items) > 1:
                return [t for item in items for t in self._convert(model, convert, [item])]
            # A malformed row or event must not stop the writer; its rows count as dropped.
            logger.exception("Could not convert a prediction of %r for the log", model)
            self._count_error()
            return []

    def _count_error(self) -> None:
        with self._cond:
            self._errors += 1

    def _write_table(
        self, model: str, table: pa.Table, *, strict: bool = True, stage: str | None = None
    ) -> int:
        """One segment per UTC day the rows fall on; return the rows written.

        ``strict=False`` (the writer thread) logs and counts a failed day and
        goes on with the others instead of raising. ``stage`` writes staged segments
        (see :meth:`write`).
        """
        check_model_name(model)
        days = table.column("timestamp").to_numpy().astype("datetime64[D]")
        # One day in nearly every batch: min == max spares sorting 100,000 days.
        unique = days[:1] if len(days) and days.min() == days.max() else np.unique(days)
        written = 0
        for day in unique:
            part = table.filter(pa.array(days == day)) if len(unique) > 1 else table
            try:
                day_of = pd.Timestamp(day).date()
                self.sink.write_segment("predictions", model, day_of, part, stage=stage)
            except Exception:
                if strict:
                    raise
                logger.exception("Could not write predictions of %r for %s", model, day)
                self._count_error()
                continue
            written += part.num_rows
        return written

    def write(
        self, batch: PredictionBatch | Iterable[PredictionRecord], *, stage: str | None = None
    ) -> int:
        """Write rows now, in the caller's thread; return how many.

        For batch scoring, where completeness matters more than latency: a full
        queue would drop rows, this never does. Raises StoreError on failure.
        With ``stage`` (a batch job's id) the rows stay invisible to every reader
        until :meth:`settle_job` publishes them: a job that fails leaves no rows.
        """
        if isinstance(batch, PredictionBatch):
            table, model = events_table([batch]), batch.model
            return self._count_written(self._write_table(model, table, stage=stage))
        if stage is not None:
            raise InvalidInputError("Only a PredictionBatch can be written staged.")
        rows = list(batch)
        total = 0
        models = sorted({r.model for r in rows})
        for model in models:
            table = records_table([r for r in rows if r.model == model])
            total += self._write_table(model, table)
        return self._count_written(total)

    def settle_job(
        self,
        model: str,
        stage: str,
        *,
        publish: bool,
        keep: Collection[str] | None = None,
        started: datetime | None = None,
    ) -> int:
        """Publish (``publish=True``, the job succeeded) or delete the segments a batch job
        wrote with ``write(..., stage=stage)`` or, per attempt at a partition, with
        ``stage=f"{stage}.{attempt}"``; with ``keep``, only the attempts named there are
        published. ``started`` (when the job began, by this log's clock) spares listing
        the days before it; a day's margin allows for workers' clocks. Returns how many
        segment files were settled."""
        check_model_name(model)
        since = None if started is None else (started - _CLOCK_MARGIN).astimezone(UTC).date()
        return self.store.settle_staged(
            "predictions", model, stage, publish=publish, keep=keep, since=since
        )

    def _count_written(self, rows: int) -> int:
        with self._cond:
            self._written += rows
        return rows

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; False if ``timeout`` seconds passed first."""
        with self._cond:
            target = self._accepted
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._processed >= target, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, stop the writer; later rows are dropped and counted."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stats(self) -> LogStats:
        """This process's counters; ``.metrics()`` names them for Prometheus."""
        with self._cond:
            return LogStats(
                accepted_total=self._accepted - self._labels_accepted,
                written_total=self._written,
                dropped_total=self._dropped,
                write_errors_total=self._errors,
                queue_depth=self._pending_rows + self._in_flight_rows,
                labels_written_total=self._labels_written,
                labels_dropped_total=self._labels_dropped,
            )

    @property
    def dropped(self) -> int:
        """Rows lost in this process: queue full, log closed, or failed writes."""
        return self.stats().dropped_total

    @property
    def queue_depth(self) -> int:
        """Rows accepted but not written yet."""
        return self.stats().queue_depth

    # -- reading and retention ----------------------------------------------

    def read(
        self,
        model: str,
        since: datetime | str | timedelta = "24h",
        until: datetime | str | timedelta | None = None,
        *,
        version: int | None = None,
        inputs: bool = True,
    ) -> pd.DataFrame:
        """Rows of ``model`` logged in ``[since, until)``; times may be relative (``"1h"``).

        Rows still queued in any process are not included (flush first).
        """
        check_model_name(model)
        now = self.clock.now()
        end = now if until is None else parse_instant(until, now=now)
        start = parse_instant(since, now=now)
        return read_window(
            self.store, model, since=start, until=end, version=version, inputs=inputs
        )

    def daily_counts(
        self,
        model: str,
        since: datetime | str | timedelta = "24h",
        until: datetime | str | timedelta | None = None,
        *,
        version: int | None = None,
    ) -> list[tuple[date, int, datetime, datetime]]:
        """Rows of ``model`` logged per UTC day of ``[since, until)``: (day, count, first
        time, last time). Counted by DuckDB, so a month of a busy model costs no memory."""
        check_model_name(model)
        now = self.clock.now()
        end = now if until is None else parse_instant(until, now=now)
        start = parse_instant(since, now=now)
        return daily_counts(self.store, model, since=start, until=end, version=version)

    def read_inputs(
        self,
        model: str,
        since: datetime | str | timedelta = "24h",
        until: datetime | str | timedelta | None = None,
        *,
        version: int | None = None,
    ) -> pd.DataFrame:
        """Only the model inputs of a window, under their own names (for drift detection)."""
        frame = self.read(model, since, until, version=version)
        columns = [c for c in frame.columns if c.startswith(INPUT_PREFIX)]
        return frame[columns].rename(columns=lambda c: c[len(INPUT_PREFIX) :])

    def sample_inputs(
        self,
        model: str,
        since: datetime | str | timedelta = "24h",
        until: datetime | str | timedelta | None = None,
        *,
        version: int | None = None,
        rows: int = 100_000,
        memory_limit_mb: int = 256,
        threads: int = 2,
    ) -> tuple[int, pd.DataFrame]:
        """The window's row count and a uniform sample of at most ``rows`` of its inputs.

        Unlike :meth:`read_inputs` nothing is loaded whole: DuckDB counts and samples the
        segments within ``memory_limit_mb`` (see :func:`.window.sample_inputs`).
        """
        from shipyard.monitoring.window import WindowLimits, sample_inputs

        check_model_name(model)
        now = self.clock.now()
        end = now if until is None else parse_instant(until, now=now)
        start = parse_instant(since, now=now)
        limits = WindowLimits(sample_rows=rows, memory_limit_mb=memory_limit_mb, threads=threads)
        return sample_inputs(
            self.store, model, since=start, until=end, version=version, limits=limits
        )

    def compact(self, *, min_files: int = 2) -> list[Compaction]:
        """Merge each day partition's small segments into one file (see :mod:`.compaction`)."""
        return compact(self.store, min_files=min_files)

    def prune(self, older_than: timedelta | str | None = None) -> list[Partition]:
        """Delete day partitions older than ``older_than`` (default: the log's retention)."""
        keep = self.retention if older_than is None else parse_duration(older_than)
        return self.store.prune(keep, now=self.clock.now())


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    # Rows from two model versions may differ in columns or types: unify, don't fail.
    return pa.concat_tables(tables, promote_options="permissive")


def _call(ref: weakref.ref[PredictionLog], method: str) -> None:
    log = ref()
    if log is not None:
        getattr(log, method)()


def open_prediction_log(
    settings: Settings,
    *,
    root: str | Path | None = None,
    retention: timedelta = DEFAULT_RETENTION,
    **options: Any,
) -> PredictionLog:
    """The prediction log a deployment with ``settings`` uses.

    By default it lives beside the artifacts: in ``settings.home`` locally, or
    under the artifact store's ``s3://bucket/prefix`` when artifacts are on S3
    (so every machine's workers share one log). ``options`` go to
    :class:`PredictionLog`.

    >>> open_prediction_log(Settings(home="/tmp/demo")).store.url
    '/tmp/demo'
    """
    storage_options: dict[str, Any] = {}
    if root is None:
        artifacts = settings.artifact_url
        root = artifacts if artifacts.startswith("s3://") else settings.home
    if str(root).startswith("s3://") and settings.s3_endpoint_url:
        storage_options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
    try:
        store = SegmentStore(root, storage_options)
    except ValueError as exc:
        raise StoreError(f"Cannot use {root} for the prediction log: {exc}") from exc
    return PredictionLog(store, retention=retention, **options)
