"""The batch scoring loop: read a chunk, check it, predict, write, repeat.

:func:`score_file` is the one service function behind ``shipyard predict`` and
the Python API. Per chunk it finds the rows that break the model's signature
with vectorised masks (:mod:`shipyard.batch.validate`), sets them aside (or
stops, in strict mode), scores the rest with
:meth:`~shipyard.registry.model.LoadedModel.predict_with_proba` (one model pass
for labels and probabilities where the model allows, else ``predict`` then
``predict_proba``), and appends the result to the output. Memory is bounded
by the chunk size: nothing accumulates across chunks except counters and the
first few rejects kept for the summary.

The output has the row id (the input's id column, or ``row_id``: the 0-based row
number in the input), ``prediction``, one ``proba_<class>`` column per class
when the model has probabilities, and ``model_version`` (``"iris:3"``).

An observer, if given, is called once per scored chunk with a
:class:`ChunkResult` (ids, inputs, outputs, timing): the seam through which the
prediction log records batch predictions without the loop knowing about it. It
runs on its own thread (beside the one writing the output), in chunk order, so
logging overlaps writing this chunk and predicting the next ones; an error in
it fails the job as a write error does.

Memory: at most a few chunks are held at once (two read ahead, ``predict_threads``
being predicted, two queued for each writer).

Example:
    >>> model = client.registry.load("iris")                                # doctest: +SKIP
    >>> summary = score_file(model, "rows.parquet", "scores.parquet")       # doctest: +SKIP
    >>> summary.rows_scored, summary.rows_rejected                          # doctest: +SKIP
    (5000000, 0)
"""

from __future__ import annotations

import contextlib
import difflib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.ahead import prefetched
from shipyard.batch.pipeline import BackgroundWriter
from shipyard.batch.validate import ChunkCheck, check_chunk
from shipyard.batch.writers import ChunkSink, open_sink
from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import InvalidInputError, SchemaError, UnscorableInputError
from shipyard.registry.array_input import array_input_model
from shipyard.registry.model import LoadedModel, furthest_out_of_range
from shipyard.registry.signature import Signature
from shipyard.tables import ChunkSource, open_source

DEFAULT_CHUNK_SIZE = 100_000
#: Chunks predicted at once by default (one per core up to this): the model's own
#: work (NumPy, scikit-learn's tree traversal, onnxruntime) runs outside the GIL.
MAX_PREDICT_THREADS = 2
#: How many rejects the summary keeps in memory; all of them go to the rejects file.
REJECTS_KEPT = 20
ROW_ID = "row_id"
ROW_NUMBER = "row_number"
REJECT_REASON = "reject_reason"
PREDICTION = "prediction"
MODEL_VERSION = "model_version"
PROBA_PREFIX = "proba_"
# Each round sets aside every row the model named; a model naming one column at a
# time needs one round per offending column.
_MODEL_REJECT_ROUNDS = 8

_ARROW_TYPES = {
    "float": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": pa.timestamp("ns"),
}


class BatchModel(Protocol):
    """What the loop needs from a loaded model (:class:`~shipyard.registry.model.LoadedModel`)."""

    name: str
    version: int | None
    signature: Signature

    @property
    def ref(self) -> str: ...

    @property
    def classes(self) -> Any: ...

    @property
    def has_proba(self) -> bool: ...

    def predict_with_proba(self, data: Any) -> tuple[np.ndarray, np.ndarray | None]: ...


ProgressCallback = Callable[[int, int | None], None]
"""Called with (rows done, total rows or None) at the start and after every chunk."""


@dataclass(frozen=True)
class Reject:
    """One row set aside: its 0-based row number, its id, and what was wrong."""

    row: int
    id: Any
    reason: str


@dataclass(frozen=True)
class ChunkResult:
    """One scored chunk, handed to the observer (e.g. the prediction log).

    ``ids``, ``rows``, ``inputs``, ``predictions`` and ``probabilities`` cover the
    scored rows only, in input order; ``rows`` are their 0-based row numbers in the
    input (rejected rows leave gaps), ``offset`` is the row number of the chunk's
    first row and ``rejected`` how many of its rows were set aside.
    """

    model_name: str
    model_version: int | None
    offset: int
    ids: np.ndarray
    rows: np.ndarray
    inputs: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray | None
    classes: tuple[Any, ...] | None
    rejected: int
    predict_seconds: float


@dataclass(frozen=True)
class BatchSummary:
    """What a batch job did. ``rejects`` keeps the first few; the rejects file has all.

    Example:
        >>> s = BatchSummary("iris:3", "in.csv", "out.csv", None, 10, 9, 1, 1, 0.5, 20.0)
        >>> s.rows_per_second
        20.0
    """

    model: str
    source: str
    output: str
    rejects_output: str | None
    rows_read: int
    rows_scored: int
    rows_rejected: int
    chunks: int
    seconds: float
    rows_per_second: float
    rejects: tuple[Reject, ...] = field(default=())


def score_file(
    model: BatchModel,
    source: ChunkSource | str | Path,
    sink: ChunkSink | str | Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    strict: bool = False,
    rejects: ChunkSink | str | Path | None = None,
    id_column: str | None = None,
    progress: ProgressCallback | None = None,
    on_chunk: Callable[[ChunkResult], None] | None = None,
    output_format: str | None = None,
    overlap_io: bool = True,
    clock: Clock = SYSTEM_CLOCK,
    first_row: int = 0,
    file_row: int | None = None,
    predict_threads: int | None = None,
) -> BatchSummary:
    """Score every row of ``source`` with ``model`` and write the results to ``sink``.

    ``source`` is a table location (any format :mod:`shipyard.tables` reads) or a
    :class:`ChunkSource`; ``sink`` a path (Parquet or CSV, by extension;
    ``output_format`` overrides it) or a :class:`ChunkSink`.
    Rows breaking the signature go to ``rejects`` (same kinds, with a
    ``reject_reason`` column) and to the summary; with ``strict=True`` the first
    one raises :class:`SchemaError` naming its row, column and expected type, and
    nothing is written. A column missing from the whole input is always fatal.
    The output (and rejects) file appears atomically when the job succeeds.
    ``on_chunk`` is called with a :class:`ChunkResult` after each scored chunk.
    ``overlap_io`` reads and checks, writes and logs on background threads while the
    model predicts (False runs everything in the calling thread).
    ``predict_threads`` chunks are predicted at once (default: up to
    :data:`MAX_PREDICT_THREADS`, one per core, with ``overlap_io``); results are still
    written, logged and numbered in input order. Meanwhile the process's BLAS and
    OpenMP pools run one thread each (restored when the job ends): the chunks keep the
    cores busy.
    ``first_row`` is the row number of the source's first row: a partition of a
    larger input numbers its row ids, rejects and logged rows as in the whole input.
    ``file_row`` is then the row number of the source's first row within its own
    file, so that the strict error names the row both ways.
    """
    if chunk_size < 1:
        raise InvalidInputError(f"The chunk size must be at least 1, got {chunk_size}.")
    if predict_threads is None:
        predict_threads = min(os.cpu_count() or 1, MAX_PREDICT_THREADS) if overlap_io else 1
    if predict_threads < 1:
        raise InvalidInputError(f"predict_threads must be at least 1, got {predict_threads}.")
    if isinstance(model, LoadedModel):
        # A scikit-learn model fitted on a DataFrame checks the column names on every
        # call (and imports narwhals on the first); when a copy without the names answers
        # bit for bit the same, it scores the checked float matrix instead.
        model = array_input_model(model)
    src = open_source(source) if isinstance(source, str | Path) else source
    out = open_sink(sink, fmt=output_format) if isinstance(sink, str | Path) else sink
    rej = open_sink(rejects) if isinstance(rejects, str | Path) else rejects
    writer = BackgroundWriter(background=overlap_io)
    # The log gets its own thread: encoding its segment (inputs, outputs, zstd) costs more
    # than the output file, and Parquet encoding runs outside the GIL, so the two overlap.
    log_writer = BackgroundWriter(background=overlap_io and on_chunk is not None)
    job = _Job(
        model,
        src,
        out,
        rej,
        strict=strict,
        id_column=id_column,
        on_chunk=on_chunk,
        writer=writer,
        log_writer=log_writer,
    )
    job.first_row = first_row
    job.file_row = file_row
    start = clock.monotonic()
    try:
        with _model_threads(predict_threads):
            _run(job, src, chunk_size, predict_threads, overlap_io, progress)
        job.finish()
        writer.close()
        log_writer.close()
        out.commit()
        if rej is not None:
            rej.commit()
    except BaseException:
        writer.abandon()
        log_writer.abandon()
        out.abort()
        if rej is not None:
            rej.abort()
        raise
    seconds = max(clock.monotonic() - start, 1e-9)
    return BatchSummary(
        model=job.model_ref,
        source=src.description,
        output=out.description,
        rejects_output=None if rej is None else rej.description,
        rows_read=job.rows_read,
        rows_scored=job.rows_scored,
        rows_rejected=job.rows_rejected,
        chunks=job.chunks,
        seconds=seconds,
        rows_per_second=job.rows_read / seconds,
        rejects=tuple(job.kept),
    )


@contextlib.contextmanager
def _model_threads(predict_threads: int) -> Iterator[None]:
    """One BLAS/OpenMP thread per model call while several chunks are predicted at once.

    The chunks already keep the cores busy; a model's own thread pool on top of them
    (NumPy's OpenBLAS under a logistic regression starts one thread per core) only
    oversubscribes them: its threads spin waiting for a core, which on two cores
    doubled the CPU a logistic regression's job used. Dask workers set the same
    limit through their environment. The previous limits come back afterwards.
    """
    if predict_threads < 2:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _run(
    job: _Job,
    src: ChunkSource,
    chunk_size: int,
    predict_threads: int,
    overlap_io: bool,
    progress: ProgressCallback | None,
) -> None:
    """The loop: read and check ahead, predict ``predict_threads`` chunks at once, complete
    them (rejects, output, log) in input order."""
    columns = job.check_columns()
    total = src.total_rows()
    if progress is not None:
        progress(0, total)
    # Checking a chunk is column-wise NumPy work: it runs on the reader thread too.
    checked = job.checked(src.chunks(columns, chunk_size))
    frames = prefetched(checked) if overlap_io else iter(checked)
    pool = ThreadPoolExecutor(predict_threads, "shipyard-batch-predict")
    in_flight: deque[_InFlight] = deque()
    try:
        for frame, check in frames:
            if check is not None and check.n_bad and job.strict:
                while in_flight:  # an earlier chunk may hold an earlier bad row
                    job.complete(in_flight.popleft())
            in_flight.append(job.start(frame, check, pool if predict_threads > 1 else None))
            # Up to predict_threads chunks are predicted at once; the oldest is
            # completed (rejects, output, log) in input order.
            while len(in_flight) >= predict_threads:
                job.complete(in_flight.popleft())
                if progress is not None:
                    progress(job.rows_read, total)
        while in_flight:
            job.complete(in_flight.popleft())
            if progress is not None:
                progress(job.rows_read, total)
    finally:
        for pending in in_flight:
            if pending.future is not None:
                pending.future.cancel()
        pool.shutdown(wait=True)
        # Stops the reader thread and closes the file or cursor, even on failure.
        close = getattr(frames, "close", None)
        if close is not None:
            close()


_Outcome = tuple[ChunkCheck, np.ndarray | None, np.ndarray | None, float]


@dataclass
class _InFlight:
    """A chunk being predicted: its rows, check and offset, and the prediction (to come)."""

    frame: pd.DataFrame
    check: ChunkCheck | None
    offset: int
    future: Future[_Outcome] | None
    outcome: _Outcome | None


def _feature_hint(model: BatchModel, missing: list[str]) -> str:
    """For a feature-backed model: batch scoring takes its feature columns from the input
    (it fetches nothing), and how to build them. Empty for any other model."""
    spec = getattr(getattr(model, "manifest", None), "features", None)
    if not isinstance(spec, Mapping) or not spec.get("refs"):
        return ""
    keys = ", ".join(spec.get("join_keys", [])) or "the entity keys"
    return (
        f" {model.ref} is feature-backed: batch scoring does not fetch its features, so the "
        f"input must hold the feature columns ({', '.join(map(repr, missing))} missing). "
        f"Build them from a table of {keys}, event_timestamp{_request_fields(spec)} with "
        "`shipyard features "
        f"training-set --entities ENTITIES --features {','.join(spec['refs'])} --output "
        "FILE`, then score FILE."
    )


def _request_fields(spec: Mapping[str, Any]) -> str:
    fields = list(spec.get("request_types", {}))
    return f" and {', '.join(fields)}" if fields else ""


class _Job:
    """State of one run of the loop: counters, the output schema, the sinks."""

    def __init__(
        self,
        model: BatchModel,
        source: ChunkSource,
        sink: ChunkSink,
        rejects: ChunkSink | None,
        *,
        strict: bool,
        id_column: str | None,
        on_chunk: Callable[[ChunkResult], None] | None,
        writer: BackgroundWriter,
        log_writer: BackgroundWriter,
    ) -> None:
        self.model = model
        self.writer = writer
        self.log_writer = log_writer
        self.signature = model.signature
        self.source = source
        self.sink = sink
        self.rejects = rejects
        self.strict = strict
        self.id_column = id_column
        self.id_name = id_column or ROW_ID
        self.on_chunk = on_chunk
        self.model_ref = model.ref
        classes = model.classes
        self.classes: tuple[Any, ...] | None = (
            None if classes is None else tuple(_py(c) for c in classes)
        )
        self.has_proba = self.classes is not None and model.has_proba
        self.takes_array = bool(getattr(model, "takes_array", False))
        self.rows_read = self.rows_scored = self.rows_rejected = self.chunks = 0
        self.rows_started = 0
        self.kept: list[Reject] = []
        self.wrote_output = self.wrote_rejects = False
        self.id_type: pa.DataType | None = None
        self.first_row = 0
        self.file_row: int | None = None

    # -- before reading --
    def check_columns(self) -> list[str]:
        """The columns to read; SchemaError naming any the input lacks."""
        present = self.source.columns()
        # A column the model never reads may be left out; check_chunk gives it as missing.
        names = [c.name for c in self.signature.inputs if c.name in present or not c.unused]
        missing = [n for n in names if n not in present]
        if missing:
            extra = [c for c in present if c not in names]
            hints = [
                f"{close[0]!r} for {name!r}"
                for name in missing
                if (close := difflib.get_close_matches(name, extra, n=1))
            ]
            hint = f" Did you mean {', '.join(hints)}?" if hints else ""
            hint += _feature_hint(self.model, missing)
            noun = "column" if len(missing) == 1 else "columns"
            raise SchemaError(
                f"The input {self.source.description!r} has no {noun} "
                f"{', '.join(map(repr, missing))}. The model {self.model_ref} takes: "
                f"{self.signature.describe()}; the input has: {', '.join(present) or '(none)'}."
                f"{hint}",
                field=missing[0],
                expected=next(c.dtype for c in self.signature.inputs if c.name == missing[0]),
            )
        if self.id_column is not None:
            if self.id_column not in present:
                raise SchemaError(
                    f"The id column {self.id_column!r} is not in {self.source.description!r}; "
                    f"its columns are: {', '.join(present)}.",
                    field=self.id_column,
                )
            taken = {PREDICTION, MODEL_VERSION, *(self._proba_names())}
            if self.id_column in taken:
                raise InvalidInputError(
                    f"The id column {self.id_column!r} clashes with an output column "
                    f"({', '.join(sorted(taken))}); rename it in the input."
                )
            if self.id_column not in names:
                names.append(self.id_column)
        return names

    def _proba_names(self) -> list[str]:
        if not self.has_proba or self.classes is None:
            return []
        return [f"{PROBA_PREFIX}{c}" for c in self.classes]

    # -- per chunk --
    def checked(
        self, frames: Iterator[pd.DataFrame]
    ) -> Iterator[tuple[pd.DataFrame, ChunkCheck | None]]:
        """Each chunk with its check against the signature (None for an empty chunk)."""
        text_numbers = self.source.text_numbers
        for frame in frames:
            if len(frame) == 0:
                yield frame, None
            else:
                yield frame, check_chunk(frame, self.signature, text_numbers=text_numbers)

    def start(
        self, frame: pd.DataFrame, check: ChunkCheck | None, pool: ThreadPoolExecutor | None
    ) -> _InFlight:
        """Number the chunk's rows and start predicting it (on ``pool``, or now)."""
        offset = self.first_row + self.rows_started
        self.rows_started += len(frame)
        if check is None:
            return _InFlight(frame, check, offset, None, None)
        if check.n_bad and self.strict:
            self._fail_first(frame, check, offset)
        if pool is None:
            return _InFlight(frame, check, offset, None, self._predict(frame, check, offset))
        future = pool.submit(self._predict, frame, check, offset)
        return _InFlight(frame, check, offset, future, None)

    def complete(self, pending: _InFlight) -> None:
        """Set aside the chunk's rejects, queue its output and log rows (input order)."""
        frame, offset = pending.frame, pending.offset
        self.rows_read += len(frame)
        self.chunks += 1
        if pending.check is None:
            return
        if pending.future is not None:
            outcome = pending.future.result()
        else:
            assert pending.outcome is not None
            outcome = pending.outcome
        check, predictions, probabilities, elapsed = outcome
        if check.n_bad:
            self._reject(frame, check, offset)
        ids = self._ids(frame, offset, check)
        if predictions is None:
            return
        # Built on the writer thread: turning labels into Arrow text is per-row work.
        self.writer.submit(self._write_output, (ids, predictions, probabilities))
        self.wrote_output = True
        self.rows_scored += len(check.frame)
        if self.on_chunk is not None:
            # On the log's thread, in chunk order: logging a chunk (Arrow conversion and a
            # compressed Parquet segment, mostly outside the GIL) overlaps the next predict.
            self.log_writer.submit(
                self.on_chunk,
                ChunkResult(
                    model_name=self.model.name,
                    model_version=self.model.version,
                    offset=offset,
                    ids=ids.to_numpy(zero_copy_only=False),
                    rows=_row_numbers(offset, len(frame), check),
                    inputs=check.frame,
                    predictions=predictions,
                    probabilities=probabilities,
                    classes=self.classes,
                    rejected=check.n_bad,
                    predict_seconds=elapsed,
                ),
            )

    def _predict(
        self, frame: pd.DataFrame, check: ChunkCheck, offset: int
    ) -> tuple[ChunkCheck, np.ndarray | None, np.ndarray | None, float]:
        """Predict the good rows; rows the model itself refuses are set aside too.

        A row can pass the signature and still break the model: a category it
        never saw, with an encoder that errors on unknown values, or values so large
        that the model's output is NaN or infinite. LoadedModel names those rows in
        a SchemaError (UnscorableInputError for the latter); they are rejected like
        any other bad row and the rest of the chunk is scored again.
        """
        for _ in range(_MODEL_REJECT_ROUNDS):
            if len(check.frame) == 0:
                return check, None, None, 0.0
            started = time.perf_counter()
            try:
                predictions, probabilities = self.model.predict_with_proba(self._model_input(check))
                if not self.has_proba:
                    probabilities = None
            except UnscorableInputError as exc:
                if not exc.rows:
                    raise
                positions = np.flatnonzero(check.good)[np.asarray(exc.rows)]
                reasons, fields = _unscorable_reasons(self.signature, frame, positions, exc)
                n = len(positions)
                check = check.exclude(positions, reasons, fields, ["finite output"] * n)
            except SchemaError as exc:
                if not exc.rows or exc.field not in self.signature.names:
                    raise
                positions = np.flatnonzero(check.good)[np.asarray(exc.rows)]
                spec = next(c for c in self.signature.inputs if c.name == exc.field)
                known = f"; expected one of {list(spec.categories)}" if spec.categories else ""
                reasons = [
                    f"{spec.name}: {frame[spec.name].iloc[p]!r} is a value the model never "
                    f"saw and cannot handle{known}"
                    for p in positions.tolist()
                ]
                n = len(reasons)
                check = check.exclude(positions, reasons, [spec.name] * n, [spec.dtype] * n)
            else:
                return check, predictions, probabilities, time.perf_counter() - started
            if self.strict:
                self._fail(check, offset)
        raise SchemaError(
            f"The model {self.model_ref} kept refusing rows of the chunk starting at row "
            f"{offset} after {_MODEL_REJECT_ROUNDS} rounds of setting them aside; check the "
            "input against the model's training data.",
        )

    def _model_input(self, check: ChunkCheck) -> pd.DataFrame | np.ndarray:
        """The checked rows as the model takes them: a float matrix when it scores arrays.

        The validator already converted every column, so a model that takes a matrix gets
        one straight from the columns; handing it the DataFrame instead made
        :meth:`~shipyard.registry.signature.Signature.coerce_array` convert it again,
        column by column (as long as the model's own prediction for a logistic regression).
        """
        frame = check.frame
        if not self.takes_array or not all(
            isinstance(t, np.dtype) and t.kind in "fiu" for t in frame.dtypes
        ):
            return frame
        return np.column_stack([frame[c].to_numpy(dtype=np.float64) for c in frame.columns])

    def _ids(self, frame: pd.DataFrame, offset: int, check: ChunkCheck) -> pa.Array:
        if self.id_column is None:
            return pa.array(_row_numbers(offset, len(frame), check))
        values = frame[self.id_column]
        if check.n_bad:
            values = values[check.good]
        ids = pa.array(values, from_pandas=True)
        if self.id_type is None:
            self.id_type = ids.type
        return ids

    def _write_output(self, scored: tuple[pa.Array, np.ndarray, np.ndarray | None]) -> None:
        self.sink.write(self._output(*scored))

    def _output(
        self, ids: pa.Array, predictions: np.ndarray, probabilities: np.ndarray | None
    ) -> pa.Table:
        n = len(ids)
        columns: dict[str, pa.Array] = {self.id_name: ids}
        if predictions.ndim == 2 and predictions.shape[1] == 1:
            predictions = predictions[:, 0]
        if predictions.ndim == 1:
            columns[PREDICTION] = pa.array(predictions, from_pandas=True)
        else:
            names = self.signature.output.names
            if len(names) != predictions.shape[1]:
                names = tuple(f"{PREDICTION}_{i}" for i in range(predictions.shape[1]))
            for j, name in enumerate(names):
                columns[name] = pa.array(predictions[:, j], from_pandas=True)
        if probabilities is not None:
            for j, name in enumerate(self._proba_names()):
                columns[name] = pa.array(probabilities[:, j], type=pa.float64())
        # One dictionary entry shared by every row: compact in Parquet, plain text in CSV.
        columns[MODEL_VERSION] = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int32)), pa.array([self.model_ref])
        )
        return pa.table(columns)

    def _fail_first(self, frame: pd.DataFrame, check: ChunkCheck, offset: int) -> NoReturn:
        """Strict mode, a chunk with a row breaking the signature: stop at the first bad row.

        A row before it may pass the signature and still be refused by the model (a
        category it never saw), so the good rows before the first signature failure
        are predicted first; :meth:`_predict` stops at any the model refuses.
        """
        first = int(check.bad[0])
        earlier = check.good.copy()
        earlier[first:] = False
        if earlier.any():
            later = np.flatnonzero(check.good)
            later = later[later > first]
            n = len(later)
            head = check.exclude(later, [""] * n, [""] * n, [""] * n)
            # Only the signature's first bad row is left beyond `first` in `head`; the
            # model's refusals (all before it) sort ahead of it in _fail.
            self._predict(frame, head, offset)
        self._fail(check, offset)

    def _fail(self, check: ChunkCheck, offset: int) -> NoReturn:
        """Strict mode: the first bad row ends the job."""
        row = int(offset + check.bad[0])
        if self.file_row is None or self.file_row == self.first_row:
            where = f"Row {row} (0-based) of {self.source.description!r}"
        else:  # a partition of an input of several files: rows are numbered across them
            in_file = row - self.first_row + self.file_row
            where = (
                f"Row {row} (0-based, numbered across the input's files as the rejects are; "
                f"row {in_file} of {self.source.description!r})"
            )
        raise SchemaError(
            f"{where} breaks the signature of "
            f"{self.model_ref}: {check.reasons[0]}. Stopped at the first bad row "
            "(--strict); no output was written.",
            field=check.fields[0] or None,
            expected=check.expected[0],
            rows=[row],
        )

    def _reject(self, frame: pd.DataFrame, check: ChunkCheck, offset: int) -> None:
        rows = offset + check.bad
        self.rows_rejected += check.n_bad
        bad = frame.iloc[check.bad]
        ids = rows if self.id_column is None else bad[self.id_column].to_numpy()
        for i in range(min(REJECTS_KEPT - len(self.kept), check.n_bad)):
            self.kept.append(Reject(int(rows[i]), _py(ids[i]), check.reasons[i]))
        if self.rejects is None:
            return
        columns: dict[str, pa.Array] = {self.id_name: pa.array(ids, from_pandas=True)}
        if self.id_column is not None:
            columns[ROW_NUMBER] = pa.array(rows, type=pa.int64())
        for name in self.signature.names:
            # An unused column the input left out is written as missing values.
            columns[name] = _as_text(bad[name]) if name in bad else pa.nulls(len(bad), pa.string())
        columns[REJECT_REASON] = pa.array(check.reasons, type=pa.string())
        self.writer.submit(self.rejects.write, pa.table(columns))
        self.wrote_rejects = True

    # -- at the end --
    def finish(self) -> None:
        """Give empty outputs their columns; the caller commits once the writer is done."""
        if not self.wrote_output:
            self.writer.submit(self.sink.write, self._empty_output())
        if self.rejects is not None and not self.wrote_rejects:
            fields = [pa.field(self.id_name, self.id_type or self._default_id_type())]
            if self.id_column is not None:
                fields.append(pa.field(ROW_NUMBER, pa.int64()))
            fields += [pa.field(n, pa.string()) for n in self.signature.names]
            fields.append(pa.field(REJECT_REASON, pa.string()))
            self.writer.submit(self.rejects.write, pa.schema(fields).empty_table())

    def _default_id_type(self) -> pa.DataType:
        return pa.int64() if self.id_column is None else pa.string()

    def _empty_output(self) -> pa.Table:
        output = self.signature.output
        fields = [pa.field(self.id_name, self.id_type or self._default_id_type())]
        if len(output.names) > 1:
            fields += [pa.field(n, _ARROW_TYPES[output.dtype]) for n in output.names]
        else:
            fields.append(pa.field(PREDICTION, _ARROW_TYPES[output.dtype]))
        fields += [pa.field(n, pa.float64()) for n in self._proba_names()]
        fields.append(pa.field(MODEL_VERSION, pa.dictionary(pa.int32(), pa.string())))
        return pa.schema(fields).empty_table()


def _row_numbers(offset: int, n: int, check: ChunkCheck) -> np.ndarray:
    """The input row numbers of a chunk's scored rows (rejected rows leave gaps)."""
    rows = np.arange(offset, offset + n, dtype=np.int64)
    return rows if not check.n_bad else rows[check.good]


def _unscorable_reasons(
    signature: Signature, frame: pd.DataFrame, positions: np.ndarray, exc: UnscorableInputError
) -> tuple[list[str], list[str]]:
    """Per rejected row: why the model had no answer, and the column furthest out of range."""
    cause = exc.__cause__
    if cause is None:  # the model answered, with NaN or infinity
        why = "the model's output for this row is not finite (NaN or infinity)"
    else:  # the model raised on it
        why = f"the model refused this row ({type(cause).__name__}: {str(cause)[:200]})"
    reasons, fields = [], []
    for position in positions.tolist():
        culprit = furthest_out_of_range(signature, frame.iloc[[position]])
        if culprit is None:
            reasons.append(f"{why}: its inputs are outside what the model can handle")
            fields.append("")
            continue
        name, value, _ = culprit
        spec = next(c for c in signature.inputs if c.name == name)
        reasons.append(
            f"{name}: {value:g} is outside what the model can handle (training range "
            f"{spec.minimum:g}..{spec.maximum:g}); {why}"
        )
        fields.append(name)
    return reasons, fields


def _as_text(values: pd.Series) -> pa.Array:
    """Raw values as text for the rejects file: bad values rarely share one type."""
    try:
        return pc.cast(pa.array(values, from_pandas=True), pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.array(
            [None if _is_missing(v) else str(v) for v in values.tolist()], type=pa.string()
        )


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BatchModel",
    "BatchSummary",
    "ChunkResult",
    "ProgressCallback",
    "Reject",
    "score_file",
]
