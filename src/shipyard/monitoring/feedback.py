"""Ground truth arriving late: store labels, match them to logged predictions by request id.

Labels are stored as Parquet segments of their own (``feedback/<model>/date=...``)
and joined to predictions only when a report is computed, so a label that
arrives before its prediction's segment was flushed (another worker's queue,
say) still joins later. Two ways in:

- :func:`queue_feedback` (``POST /feedback``): validate, then queue for the
  prediction log's background writer; nothing is looked up, so a flood of
  posts costs the same per post and makes one segment per flush;
- :func:`record_feedback` (``shipyard monitor feedback FILE``, the Python
  API): write at once and look every label up, reporting the request ids no
  logged prediction had, the labels for rows a logged request does not have
  (both are stored too) and the rows labelled before.

Columns of a feedback segment: ``request_id``, ``row``, ``label`` (text, see
:func:`~shipyard.monitoring.records.class_key`), ``label_timestamp`` (when the
truth became known, if the sender said), ``received_at``, ``known`` (whether
the prediction was found on arrival) and ``batch``/``seq`` (arrival order, so
the newest label of a row wins).

>>> result = record_feedback(log, [{"request_id": "r1", "label": "setosa"}])  # doctest: +SKIP
>>> result.accepted, result.unknown_ids, result.duplicates                     # doctest: +SKIP
(1, [], 0)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from shipyard.errors import InvalidInputError, StoreError
from shipyard.monitoring.durations import to_utc
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.queries import find_known, find_known_ids, find_labelled
from shipyard.monitoring.records import (
    TIMESTAMP,
    FeedbackItem,
    FeedbackResult,
    LabelBatch,
    class_key,
)
from shipyard.monitoring.segments import UNASSIGNED
from shipyard.registry.refs import check_model_name
from shipyard.tables import locate, read_table

__all__ = [
    "MAX_ROW",
    "FeedbackIn",
    "FeedbackOut",
    "check_classes",
    "queue_feedback",
    "read_feedback_file",
    "record_feedback",
]

_REQUIRED = ("request_id", "label")
#: ``row`` is stored as a 32-bit integer, as the prediction log numbers rows.
MAX_ROW = 2**31 - 1
_OPTIONAL = ("row", "timestamp")
# How long a feedback call waits for this process's queued predictions to be
# written, so labels sent right after a prediction find it.
_FLUSH_TIMEOUT = 5.0


class FeedbackIn(BaseModel):
    """One label as ``POST /feedback`` takes it (the body is one of these or a list).

    >>> FeedbackIn(request_id="r1", label="setosa").row
    0
    """

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, description="The id the prediction was answered with.")
    # Strict types, bool first: 1 stays 1, "1" stays "1", true stays true.
    label: StrictBool | StrictInt | StrictFloat | StrictStr = Field(
        description="The true class (classification) or value (regression)."
    )
    row: int = Field(0, ge=0, le=MAX_ROW, description="Position of the record within its request.")
    timestamp: datetime | None = Field(
        None, description="When the truth became known (default: when received)."
    )


class FeedbackOut(BaseModel):
    """What ``POST /feedback`` answers: how many labels were queued.

    Labels are matched to predictions later, in bulk (coverage and realized
    accuracy in ``/metrics`` and ``shipyard monitor performance``); checking
    each id on arrival is what ``shipyard monitor feedback FILE`` does.

    >>> FeedbackOut(accepted=2).model_dump()
    {'accepted': 2}
    """

    accepted: int = Field(description="Labels queued; they are written within a second.")


FeedbackInput: TypeAlias = (
    pd.DataFrame
    | FeedbackItem
    | FeedbackIn
    | Mapping[str, Any]
    | Iterable[FeedbackItem | FeedbackIn | Mapping[str, Any]]
)


def read_feedback_file(
    path: str | Path, *, storage_options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Labels from a table with ``request_id,label[,timestamp][,row]``: a CSV, Parquet or
    JSON lines file (local or s3://) or a database ``URL#TABLE``, as :mod:`shipyard.tables`
    reads them.

    Returns the validated frame :func:`record_feedback` takes; errors name the
    file, the column and the offending line.
    """
    where = locate(path)
    # Ids are text even when they look like numbers ("007" stays "007").
    frame = read_table(where, storage_options=storage_options, text_columns=("request_id",))
    # Line numbers in messages: the header is line 1 of a CSV, data starts at 2.
    first_line = 2 if where.format in ("csv", "tsv") else 1
    return _normalize(frame, where=str(path), first_line=first_line)


def _items_frame(items: FeedbackInput) -> pd.DataFrame:
    if isinstance(items, pd.DataFrame):
        return items
    if isinstance(items, FeedbackItem | FeedbackIn | Mapping):
        items = [items]
    rows = []
    for item in items:
        if isinstance(item, FeedbackIn):
            rows.append(item.model_dump())
        elif isinstance(item, FeedbackItem):
            rows.append(
                {
                    "request_id": item.request_id,
                    "label": item.label,
                    "row": item.row,
                    "timestamp": item.timestamp,
                }
            )
        elif isinstance(item, Mapping):
            rows.append(dict(item))
        else:
            raise InvalidInputError(
                f"Feedback item {len(rows)} is a {type(item).__name__}; expected an object "
                f'like {{"request_id": "...", "label": ...}}.'
            )
    return pd.DataFrame(rows, columns=None if rows else list(_REQUIRED))


def _lines(where: str, first_line: int, mask: np.ndarray) -> str:
    bad = np.flatnonzero(mask)[:5] + first_line
    more = " ..." if mask.sum() > 5 else ""
    noun = "line" if where != "feedback" else "item"
    return f"{where} {noun}{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}{more}"


def _normalize(
    frame: pd.DataFrame, *, where: str = "feedback", first_line: int = 0
) -> pd.DataFrame:
    """Validated labels: request_id (text), row (int), label (text), timestamp (UTC or NaT)."""
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"{where}: missing column(s) {missing}; labels need columns request_id and label "
            f"(optionally timestamp and row). Found {list(frame.columns)}."
        )
    extra = [c for c in frame.columns if c not in (*_REQUIRED, *_OPTIONAL)]
    if extra:
        raise InvalidInputError(
            f"{where}: unexpected column(s) {extra}; allowed are request_id, label, "
            f"timestamp and row."
        )
    ids = frame["request_id"]
    bad_id = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if bad_id.any():
        raise InvalidInputError(
            f"{_lines(where, first_line, bad_id)}: request_id is missing; every label needs "
            f"the request id the prediction was answered with."
        )
    labels = [class_key(v) for v in frame["label"].tolist()]
    bad_label = np.array([v is None for v in labels], dtype=bool)
    if bad_label.any():
        raise InvalidInputError(
            f"{_lines(where, first_line, bad_label)}: label is missing; send the true class "
            f"or value."
        )
    rows = frame["row"] if "row" in frame.columns else pd.Series(0, index=frame.index)
    row_values = pd.to_numeric(rows.fillna(0), errors="coerce")
    bad_row = (
        row_values.isna() | (row_values < 0) | (row_values > MAX_ROW) | (row_values % 1 != 0)
    ).to_numpy()
    if bad_row.any():
        raise InvalidInputError(
            f"{_lines(where, first_line, bad_row)}: row must be a whole number from 0 to "
            f"{MAX_ROW} (the position of the record within its request)."
        )
    stamps = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    if "timestamp" in frame.columns:
        raw = frame["timestamp"]
        try:
            stamps = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
        except (ValueError, TypeError):
            stamps = pd.to_datetime(raw, utc=True, errors="coerce")
        bad_time = (stamps.isna() & raw.notna()).to_numpy()
        if bad_time.any():
            raise InvalidInputError(
                f"{_lines(where, first_line, bad_time)}: timestamp is not a time; use ISO "
                f"8601 such as 2024-05-01T12:00:00Z."
            )
    return pd.DataFrame(
        {
            "request_id": ids.astype(str).str.strip().to_numpy(),
            "row": row_values.astype(np.int32).to_numpy(),
            "label": labels,
            "timestamp": stamps.astype("datetime64[us, UTC]").to_numpy(),
        }
    )


def record_feedback(
    log: PredictionLog,
    items: FeedbackInput,
    *,
    model: str | None = None,
) -> FeedbackResult:
    """Store ground-truth labels and report which request ids were unknown.

    ``items``: one ``{request_id, label[, row][, timestamp]}`` mapping or
    :class:`FeedbackItem`, many of them, or a frame with those columns (as
    :func:`read_feedback_file` returns). With ``model`` the labels belong to
    that model; without, each is matched to whichever model logged its request
    id. Raises :class:`~shipyard.errors.InvalidInputError` naming the item and
    field when any label is malformed, and stores nothing then.
    """
    if model is not None:
        check_model_name(model)
    frame = _normalize(_items_frame(items))
    if frame.empty:
        return FeedbackResult(accepted=0)
    # Predictions this process has queued must be on disk before we look them up.
    log.flush(timeout=_FLUSH_TIMEOUT)
    store = log.store
    keys = frame[["request_id", "row"]]
    known = find_known(store, keys, model).drop_duplicates(["request_id", "row"])
    merged = frame.merge(known, on=["request_id", "row"], how="left", indicator=True)
    is_known = (merged["_merge"] == "both").to_numpy()
    if model is not None:
        owners = np.full(len(frame), model, dtype=object)
    else:
        owners = merged["model"].where(merged["_merge"] == "both", UNASSIGNED).to_numpy(object)

    targets = sorted(set(owners.tolist()))
    labelled = find_labelled(store, keys, [t for t in targets if t != UNASSIGNED])
    before = frame.merge(
        labelled.drop_duplicates(), on=["request_id", "row"], how="left", indicator=True
    )
    seen_before = (before["_merge"] == "both").to_numpy()
    repeated = keys.duplicated(keep="first").to_numpy()
    duplicates = int((seen_before | repeated).sum())

    received = to_utc(log.clock.now())
    batch = time.time_ns()
    for target in targets:
        mask = owners == target
        table = _label_table(frame, mask, received, batch, known=is_known[mask])
        store.write_segment("feedback", target, received.date(), table)
    # Per label: a label whose (request id, row) has no prediction is either for an id
    # no prediction has (a typo, or still in a writer's queue) or for a row its logged
    # request does not have (a batch job's rejected row); the two are told apart.
    unmatched = frame.loc[~is_known, ["request_id", "row"]]
    logged_ids = find_known_ids(store, unmatched["request_id"].unique().tolist(), model)
    in_logged = unmatched["request_id"].isin(logged_ids).to_numpy()
    unknown = list(dict.fromkeys(unmatched.loc[~in_logged, "request_id"].tolist()))
    unknown_rows = [
        (str(rid), int(row))
        for rid, row in unmatched.loc[in_logged].itertuples(index=False, name=None)
    ]
    return FeedbackResult(
        accepted=len(frame),
        unknown_ids=unknown,
        duplicates=duplicates,
        matched=int(is_known.sum()),
        unknown_rows=unknown_rows,
    )


def check_classes(frame: pd.DataFrame, classes: Sequence[Any], *, model: str) -> None:
    """Every label of ``frame`` (normalized) is one of ``classes``, or InvalidInputError
    naming the first that is not, its item, and the classes the model knows."""
    known = {class_key(c) for c in classes}
    bad = ~frame["label"].isin(known).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        listed = ", ".join(repr(k) for k in sorted(known, key=str))
        where = f"feedback item {first}: " if len(frame) > 1 else ""
        raise InvalidInputError(
            f"{where}label {frame['label'].iloc[first]!r} is not a class of model {model!r}; "
            f"its classes are {listed}."
        )


def queue_feedback(
    log: PredictionLog,
    items: FeedbackInput,
    *,
    model: str,
    classes: Sequence[Any] | None = None,
) -> int:
    """Queue ground-truth labels of ``model`` for the log's background writer; return
    how many. What ``POST /feedback`` does.

    Nothing is looked up or written in the caller's thread: labels are joined
    to predictions in bulk when a report or the monitor job runs (labels for
    ids no prediction has simply join nothing), and a flood of posts makes one
    segment per flush. Raises :class:`~shipyard.errors.InvalidInputError`
    naming the item and field when any label is malformed or, given the
    model's ``classes``, is not one of them (nothing is queued then), and
    :class:`~shipyard.errors.StoreError` when the queue is full.
    """
    check_model_name(model)
    frame = _normalize(_items_frame(items))
    if frame.empty:
        return 0
    if classes is not None:
        check_classes(frame, classes, model=model)
    received = to_utc(log.clock.now())
    table = _label_table(frame, np.ones(len(frame), bool), received, time.time_ns(), known=None)
    if not log.submit_labels(LabelBatch(model, received.date(), table)):
        raise StoreError(
            f"The label queue of {log.store.url} is full (its writer is behind); "
            f"retry the {len(frame)} label(s) in a moment."
        )
    return len(frame)


def _label_table(
    frame: pd.DataFrame,
    mask: np.ndarray,
    received: datetime,
    batch: int,
    *,
    known: np.ndarray | None,
) -> pa.Table:
    """The rows of ``frame`` under ``mask`` as a feedback segment (see the module doc).

    ``known`` is null when the labels were queued without a lookup.
    """
    part = frame[mask]
    n = len(part)
    return pa.table(
        {
            "request_id": pa.array(part["request_id"], pa.string()),
            "row": pa.array(part["row"], pa.int32()),
            "label": pa.array(part["label"], pa.string()),
            "label_timestamp": pa.array(part["timestamp"], TIMESTAMP),
            "received_at": pa.array([received] * n, TIMESTAMP),
            "known": pa.array([None] * n if known is None else known, pa.bool_()),
            "batch": pa.array([batch] * n, pa.int64()),
            "seq": pa.array(np.flatnonzero(mask), pa.int64()),
        }
    )
