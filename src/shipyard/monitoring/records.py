"""What the prediction log stores, and how it becomes Arrow tables.

One logged prediction is one *row*: a request that scored ten records makes
ten rows sharing a ``request_id`` and numbered by ``row`` (0-based), so a
label can be attached to each. Rows are stored as flat columns, so the drift
detector can read a window of them as a plain table:

============== ===================================================================
column         meaning
============== ===================================================================
request_id     the id the server answered with
row            position of the record within its request (0 for single records)
timestamp      when the request arrived, UTC (microseconds)
model          registered model name
version        model version that answered
variant        deployment variant that answered (``primary``, ``canary``, ...)
source         ``online`` (HTTP) or ``batch``
latency_seconds time from arrival to the model's answer
deployment     the deployment that answered (only when a deployment's server logged
               the segment; null for direct traffic)
in_<feature>   one column per input feature
prediction     the model's output
proba_<class>  the probability of each class, for classifiers that give them
============== ===================================================================

Class names become column names and are compared with labels through
:func:`class_key`, so ``1``, ``1.0`` and ``"1"`` name the same class whether
they came from a model, a JSON body or a CSV file.

>>> from datetime import UTC, datetime
>>> rec = PredictionRecord(
...     request_id="r1", timestamp=datetime(2024, 1, 1, tzinfo=UTC), model="iris",
...     version=3, inputs={"sepal_length": 5.1}, prediction=0,
...     probabilities={0: 0.9, 1: 0.1}, latency_seconds=0.002)
>>> records_table([rec]).column_names[-4:]
['in_sepal_length', 'prediction', 'proba_0', 'proba_1']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from shipyard.errors import InvalidInputError
from shipyard.registry.signature import ColumnBatch

__all__ = [
    "INPUT_PREFIX",
    "PROBA_PREFIX",
    "FeedbackItem",
    "FeedbackResult",
    "LabelBatch",
    "LogStats",
    "PredictionBatch",
    "PredictionEventLike",
    "PredictionRecord",
    "class_key",
    "event_table",
    "events_table",
    "records_table",
]

INPUT_PREFIX = "in_"
PROBA_PREFIX = "proba_"
Source = Literal["online", "batch"]
TIMESTAMP = pa.timestamp("us", tz="UTC")


def class_key(value: Any) -> str | None:
    """The canonical text of a class label or a ground-truth label; ``None`` for missing.

    >>> [class_key(v) for v in (1, 1.0, "1", np.int64(1), True, 0.25, None, float("nan"))]
    ['1', '1', '1', '1', 'True', '0.25', None, None]
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One predicted row, as the online server or a batch job saw it.

    ``timestamp`` must be timezone-aware (it is stored in UTC);
    ``probabilities`` maps each class to its probability, for classifiers.
    """

    request_id: str
    timestamp: datetime
    model: str
    version: int
    inputs: Mapping[str, Any]
    prediction: Any
    probabilities: Mapping[Any, float] | None = None
    latency_seconds: float = 0.0
    variant: str = "primary"
    source: Source = "online"
    row: int = 0
    deployment: str | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise InvalidInputError(
                f"PredictionRecord {self.request_id!r}: timestamp {self.timestamp} has no "
                f"time zone; pass an aware datetime such as datetime.now(UTC)."
            )


class PredictionEventLike(Protocol):
    """A whole answered request, column-wise (what the server's observer seam hands over).

    ``timestamp`` is seconds since the epoch (or an aware datetime); ``inputs``
    a frame with one row per prediction (an array gets columns ``0..k-1``, or the
    names in an ``input_columns`` attribute when the event has one);
    ``probabilities`` one column per entry of ``classes``.
    """

    @property
    def request_id(self) -> str: ...
    @property
    def timestamp(self) -> float | datetime: ...
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def variant(self) -> str: ...
    @property
    def inputs(self) -> pd.DataFrame | np.ndarray | ColumnBatch: ...
    @property
    def predictions(self) -> np.ndarray: ...
    @property
    def probabilities(self) -> np.ndarray | None: ...
    @property
    def classes(self) -> tuple[Any, ...] | None: ...
    @property
    def latency_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PredictionBatch:
    """Many rows at once, column-wise: what batch scoring logs per chunk.

    Same fields as the server's prediction event, plus ``source``.

    >>> import numpy as np, pandas as pd
    >>> batch = PredictionBatch(
    ...     request_id="job-7", timestamp=1714560000.0, model="iris", version=3,
    ...     inputs=pd.DataFrame({"x": [1.0, 2.0]}), predictions=np.array([0, 1]),
    ...     probabilities=np.array([[0.8, 0.2], [0.3, 0.7]]), classes=(0, 1), source="batch")
    >>> event_table(batch).num_rows
    2
    """

    request_id: str
    timestamp: float | datetime
    model: str
    version: int
    inputs: pd.DataFrame | np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: tuple[Any, ...] | None = None
    latency_seconds: float = 0.0
    variant: str = "primary"
    source: Source = "batch"
    #: Row number of the first row: a batch job logs each chunk under the job's
    #: id with rows numbered as in the input file, so a label for input row N
    #: is ``{"request_id": job_id, "row": N}``.
    first_row: int = 0
    #: Each row's number, when they are not consecutive from ``first_row``: a
    #: chunk whose rejected rows were set aside logs the input row number of
    #: every row it scored, so a label still joins the row it was given for.
    rows: np.ndarray | None = None
    #: The deployment that answered, as its servers stamp it; None (a batch job,
    #: direct traffic) counts towards no deployment's monitoring.
    deployment: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """A ground-truth label for one logged row, possibly arriving long after it.

    ``timestamp`` is when the truth became known (defaults to when Shipyard
    received it); it sets the label delay.
    """

    request_id: str
    label: Any
    row: int = 0
    timestamp: datetime | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """What happened to a batch of labels, counted per label (request id and row).

    Every valid label is stored (``accepted``). ``matched`` of them point at a
    logged prediction. ``unknown_ids`` lists request ids no logged prediction
    had when the labels arrived: they are kept and join later if their
    prediction was still in a writer's queue, but are reported so a wrong id
    never goes unnoticed. ``unknown_rows`` lists the ``(request id, row)`` of
    labels whose request *is* logged but not at that row (a batch job's
    rejected rows, a row number off by one). ``duplicates`` counts labels for
    rows that already had one (the newest label wins).
    """

    accepted: int
    unknown_ids: list[str] = field(default_factory=list)
    duplicates: int = 0
    matched: int = 0
    unknown_rows: list[tuple[str, int]] = field(default_factory=list)

    @property
    def n_unknown(self) -> int:
        """Distinct request ids with no logged prediction."""
        return len(self.unknown_ids)

    @property
    def unknown_id_labels(self) -> int:
        """Labels whose request id has no logged prediction at all."""
        return self.accepted - self.matched - len(self.unknown_rows)


@dataclass(frozen=True, slots=True)
class LabelBatch:
    """Labels of one model received together, as the columns of a feedback segment.

    Queued with :meth:`~shipyard.monitoring.prediction_log.PredictionLog.submit_labels`
    and written by the log's background writer beside the predictions, in the
    ``feedback/<model>/date=<day>`` partition.
    """

    model: str
    day: date
    table: pa.Table


@dataclass(frozen=True)
class LogStats:
    """Counters of one :class:`~shipyard.monitoring.prediction_log.PredictionLog` (this process).

    The ``*_total`` and ``queue_depth`` figures count prediction rows; labels
    queued through the same writer are counted apart (``labels_*``).
    """

    accepted_total: int
    written_total: int
    dropped_total: int
    write_errors_total: int
    queue_depth: int
    labels_written_total: int = 0
    labels_dropped_total: int = 0

    def metrics(self) -> dict[str, float]:
        """The counters under their Prometheus names."""
        return {
            "shipyard_prediction_log_accepted_total": float(self.accepted_total),
            "shipyard_prediction_log_written_total": float(self.written_total),
            "shipyard_prediction_log_dropped_total": float(self.dropped_total),
            "shipyard_prediction_log_write_errors_total": float(self.write_errors_total),
            "shipyard_prediction_log_queue_depth": float(self.queue_depth),
            "shipyard_feedback_labels_written_total": float(self.labels_written_total),
            "shipyard_feedback_labels_dropped_total": float(self.labels_dropped_total),
        }


# --- to Arrow ----------------------------------------------------------------


def _array(values: Any) -> pa.Array:
    """Arrow array with inferred type; mixed or odd objects fall back to text."""
    try:
        if isinstance(values, pd.Series):
            return pa.Array.from_pandas(values)
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _meta_columns(
    request_ids: Any,
    rows: Any,
    timestamps: pa.Array,
    model: Any,
    version: Any,
    variant: Any,
    source: Any,
    latency: Any,
) -> dict[str, pa.Array]:
    return {
        "request_id": pa.array(request_ids, pa.string()),
        "row": pa.array(rows, pa.int32()),
        "timestamp": timestamps,
        "model": pa.array(model, pa.string()),
        "version": pa.array(version, pa.int64()),
        "variant": pa.array(variant, pa.string()),
        "source": pa.array(source, pa.string()),
        "latency_seconds": pa.array(latency, pa.float64()),
    }


def records_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """The rows of ``records`` as one table with the log's columns (see the module doc)."""
    columns = _meta_columns(
        [r.request_id for r in records],
        [r.row for r in records],
        pa.array([r.timestamp for r in records], TIMESTAMP),
        [r.model for r in records],
        [r.version for r in records],
        [r.variant for r in records],
        [r.source for r in records],
        [float(r.latency_seconds) for r in records],
    )
    if any(r.deployment is not None for r in records):
        columns["deployment"] = pa.array([r.deployment for r in records], pa.string())
    features: dict[str, None] = {}
    classes: dict[str, None] = {}
    for record in records:
        features.update(dict.fromkeys(record.inputs))
        if record.probabilities:
            # A class is a label, never missing, so its key is text.
            classes.update(dict.fromkeys(str(class_key(c)) for c in record.probabilities))
    for name in features:
        columns[INPUT_PREFIX + str(name)] = _array([r.inputs.get(name) for r in records])
    columns["prediction"] = _array([r.prediction for r in records])
    for key in classes:
        values = []
        for record in records:
            probas = {class_key(c): p for c, p in (record.probabilities or {}).items()}
            values.append(None if key not in probas else float(probas[key]))
        columns[PROBA_PREFIX + str(key)] = pa.array(values, pa.float64())
    return pa.table(columns)


def _epoch_us(value: float | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInputError(f"Prediction timestamp {value} has no time zone.")
        return round(value.timestamp() * 1_000_000)
    return round(float(value) * 1_000_000)


def _named_matrix(
    events: Sequence[PredictionEventLike], sizes: np.ndarray
) -> tuple[np.ndarray, pd.Index] | None:
    """The events' inputs stacked into one float matrix, when every event carries a
    2-D float matrix of its own rows with the same column names (``input_columns``),
    as the server hands them over; else None (built frame by frame instead)."""
    names = getattr(events[0], "input_columns", None)
    if names is None:
        return None
    parts = []
    for event, n in zip(events, sizes, strict=True):
        inputs = event.inputs
        same = getattr(event, "input_columns", None)
        if (
            not isinstance(inputs, np.ndarray)
            or inputs.dtype != np.float64
            or inputs.shape != (n, len(names))
            or same is None
            or (same is not names and not same.equals(names))
        ):
            return None
        parts.append(inputs)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), names


def _stacked_columns(events: Sequence[PredictionEventLike]) -> ColumnBatch | None:
    """The events' validated columns one after the other, when one frame of them all
    has the very column types the events' frames concatenated have: every event a
    :class:`ColumnBatch` with the same columns, each column float64 throughout or
    text without a missing value throughout. Else None (built frame by frame)."""
    parts = [e.inputs for e in events]
    first = parts[0]
    if not isinstance(first, ColumnBatch):
        return None
    names = list(first.columns)
    for part in parts:
        if not isinstance(part, ColumnBatch) or list(part.columns) != names:
            return None
    for name in names:
        arrays = [p.columns[name] for p in parts]  # type: ignore[union-attr]
        kind = arrays[0].dtype.kind
        if kind == "f":
            if any(a.dtype != np.float64 for a in arrays):
                return None
        elif kind == "O":
            if any(a.dtype.kind != "O" or not all(type(v) is str for v in a) for a in arrays):
                return None
        else:
            return None
    return ColumnBatch.concat(parts)  # type: ignore[arg-type]


def _event_inputs(event: PredictionEventLike, n: int) -> pd.DataFrame:
    inputs = event.inputs
    if isinstance(inputs, ColumnBatch):
        inputs = inputs.frame()  # what the frame path of the server would have handed over
    if not isinstance(inputs, pd.DataFrame):
        names = getattr(event, "input_columns", None)
        inputs = pd.DataFrame(np.asarray(inputs).reshape(n, -1), columns=names)
    if len(inputs) != n:
        raise InvalidInputError(
            f"Request {event.request_id}: {len(inputs)} input rows but {n} predictions."
        )
    return inputs


def _with_sent(event: PredictionEventLike, inputs: pd.DataFrame) -> pd.DataFrame:
    """``inputs`` with the event's request columns (keys, request-time fields) in front."""
    sent = getattr(event, "request_columns", None)
    if not sent:
        return inputs
    inputs = inputs.copy(deep=False)  # new columns, never on a frame someone else holds
    for position, (name, values) in enumerate(sent.items()):
        inputs.insert(position, name, values)
    return inputs


_PLAIN = (int, float, str, bool)


def _sent_columns(
    events: Sequence[PredictionEventLike],
    frames: list[pd.DataFrame] | None,
    inputs: Sequence[Any] = (),
) -> dict[str, pd.Series] | None:
    """The request columns of all events, one column each, when that is exactly what
    inserting them event by event and concatenating gives; None otherwise.

    That holds when every event sent the same fields with inputs of the same columns,
    and each field's values are of one plain Python type (or arrays of one dtype)
    across the events: pandas then infers the same column type from the whole as
    from each part. Anything else (a hot swap mid-flush, ints in one request and
    text in another) goes through :func:`_with_sent`. ``frames`` None: the inputs
    are known to share their columns (``inputs``, one stacked matrix or batch), and
    a field named like one of them (which inserting would refuse) gives None too.
    """
    sent = [getattr(e, "request_columns", None) for e in events]
    if sent[0] is None or any(s is None or list(s) != list(sent[0]) for s in sent):
        return {} if all(s is None for s in sent) else None
    if frames is None:
        if any(name in inputs for name in sent[0]):
            return None
    elif len(frames) > 1 and any(list(f.columns) != list(frames[0].columns) for f in frames):
        return None
    columns: dict[str, pd.Series] = {}
    for name in sent[0]:
        parts = [s[name] for s in sent if s is not None]
        if all(isinstance(p, list) for p in parts):
            values = [v for p in parts for v in p]
            kinds = {type(v) for v in values}
            if len(kinds) != 1 or kinds.pop() not in _PLAIN:
                return None
            columns[name] = pd.Series(values)
        elif all(isinstance(p, np.ndarray) for p in parts):
            if len({p.dtype for p in parts}) != 1 or parts[0].dtype == object:
                return None
            columns[name] = pd.Series(np.concatenate(parts))
        else:
            return None
    return columns


def _row_numbers(event: PredictionEventLike, n: int) -> np.ndarray:
    """The logged row numbers of an event's ``n`` rows: its own, else ``first_row`` onwards."""
    rows = getattr(event, "rows", None)
    if rows is None:
        start = getattr(event, "first_row", 0)
        return np.arange(start, start + n, dtype=np.int32)
    rows = np.asarray(rows)
    if len(rows) != n:
        raise InvalidInputError(
            f"Request {event.request_id}: {len(rows)} row numbers but {n} predictions."
        )
    return rows.astype(np.int32)


def _per_event(values: Sequence[Any], sizes: np.ndarray, type: pa.DataType) -> pa.Array:
    """One value per event, repeated over the event's rows.

    A batch job logs one event of 100,000 rows per chunk: Arrow repeats its values
    in C++, where a NumPy object array of 100,000 strings cost ~2.5 ms per column.
    """
    if len(values) == 1:
        return pa.repeat(pa.scalar(values[0], type), int(sizes[0]))
    return pa.array(np.repeat(np.array(values, dtype=object), sizes), type)


def events_table(events: Sequence[PredictionEventLike], source: Source | None = None) -> pa.Table:
    """Answered requests (each with all its rows) as one table with the log's columns.

    Built column-wise in one go, so logging a second's worth of requests costs
    a handful of numpy and pandas calls rather than work per request.
    """
    if not events:
        raise InvalidInputError("events_table needs at least one event.")
    predictions = [np.asarray(e.predictions) for e in events]
    sizes = np.array([len(p) for p in predictions])
    total = int(sizes.sum())
    stamps = _per_event([_epoch_us(e.timestamp) for e in events], sizes, pa.int64())
    columns = _meta_columns(
        _per_event([e.request_id for e in events], sizes, pa.string()),
        np.concatenate([_row_numbers(e, int(n)) for e, n in zip(events, sizes, strict=True)]),
        stamps.cast(TIMESTAMP),
        _per_event([e.model for e in events], sizes, pa.string()),
        _per_event([int(e.version) for e in events], sizes, pa.int64()),
        _per_event([e.variant for e in events], sizes, pa.string()),
        _per_event([source or getattr(e, "source", "online") for e in events], sizes, pa.string()),
        _per_event([float(e.latency_seconds) for e in events], sizes, pa.float64()),
    )
    deployments = [getattr(e, "deployment", None) for e in events]
    if any(name is not None for name in deployments):  # served through a deployment
        columns["deployment"] = _per_event(deployments, sizes, pa.string())
    # The server's own events: stacked without a frame per event, a feature-backed
    # model's request columns (keys, request-time fields) in front as one column each.
    stacked = _named_matrix(events, sizes)
    batch = _stacked_columns(events) if stacked is None else None
    sent = None
    if stacked is not None:
        sent = _sent_columns(events, None, stacked[1])
    elif batch is not None:
        sent = _sent_columns(events, None, list(batch.columns))
    if sent is not None:
        for name, sent_values in sent.items():
            columns[INPUT_PREFIX + name] = _array(sent_values)
    if sent is not None and stacked is not None:  # one float matrix, named columns
        values, names = stacked
        for j, name in enumerate(names):
            columns[INPUT_PREFIX + str(name)] = _array(np.ascontiguousarray(values[:, j]))
    elif sent is not None and batch is not None:  # validated columns: one frame for them all
        inputs = batch.frame()
        for name in inputs.columns:
            columns[INPUT_PREFIX + str(name)] = _array(inputs[name])
    else:
        frames = [_event_inputs(e, int(n)) for e, n in zip(events, sizes, strict=True)]
        sent = _sent_columns(events, frames)
        if sent is None:  # inserted request by request, as sent, in front of the inputs
            frames = [_with_sent(e, frame) for e, frame in zip(events, frames, strict=True)]
        inputs = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        for name, sent_values in (sent or {}).items():
            columns[INPUT_PREFIX + name] = _array(sent_values)
        for name in inputs.columns:
            columns[INPUT_PREFIX + str(name)] = _array(inputs[name])
    flat = np.concatenate(predictions) if predictions[0].ndim <= 1 else None
    columns["prediction"] = _array(
        flat if flat is not None else [row for p in predictions for row in p]
    )
    probas: dict[str, np.ndarray] = {}
    offset = 0
    for event, n in zip(events, sizes, strict=True):
        if event.probabilities is not None and event.classes is not None:
            matrix = np.asarray(event.probabilities, dtype=np.float64).reshape(int(n), -1)
            if matrix.shape[1] != len(event.classes):
                raise InvalidInputError(
                    f"Request {event.request_id}: {matrix.shape[1]} probability columns for "
                    f"{len(event.classes)} classes {list(event.classes)}."
                )
            for j, cls in enumerate(event.classes):
                key = PROBA_PREFIX + str(class_key(cls))
                if key not in probas:
                    probas[key] = np.full(total, np.nan)
                probas[key][offset : offset + n] = matrix[:, j]
        offset += int(n)
    for key, values in probas.items():
        columns[key] = pa.array(values, pa.float64(), from_pandas=True)
    flags = [getattr(e, "contract_violations", None) for e in events]
    if any(f is not None for f in flags):  # inputs checked against the data contract
        columns["contract_violation"] = pa.array(
            np.concatenate(
                [
                    np.zeros(int(n), bool) if f is None else np.asarray(f, bool)
                    for f, n in zip(flags, sizes, strict=True)
                ]
            )
        )
    return pa.table(columns)


def event_table(event: PredictionEventLike, source: Source | None = None) -> pa.Table:
    """One answered request (all its rows) as a table with the log's columns."""
    return events_table([event], source)
