"""Compaction: merge a day partition's many small segments into one sorted file.

Every worker writes a segment per flush (up to one a second), so a busy day
leaves tens of thousands of small files, and reading a window would open all
of them. Compaction merges the files of a partition into one Parquet file
sorted by time (so DuckDB can skip row groups outside a window), then deletes
the files it merged. Run it periodically from one place (``shipyard monitor
compact`` from cron, or one server worker).

It is safe against readers and against itself: the merged file is published
(atomically) *before* its sources are deleted, so no row is ever missing; a
reader that lists both in between, or two compactions racing, can only see
rows twice, and readers drop such exact duplicates whenever a partition holds
a compacted file (see :mod:`.queries`). The next compaction removes them for good.

>>> compact(store)  # doctest: +SKIP
[Compaction(kind='predictions', model='iris', day=datetime.date(2024, 5, 1), files=3600, ...)]
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from shipyard.clock import utc_now
from shipyard.errors import StoreError
from shipyard.monitoring.segments import KINDS, Kind, SegmentStore

__all__ = ["COMPACTED", "Compaction", "compact", "compact_partition", "dedupe_clause"]

#: Marks a merged segment's name: ``part-<time>-compacted-<uuid>.parquet``.
COMPACTED = "-compacted-"
# What makes two stored rows the same row (a copy from a racing compaction).
_IDENTITY = {
    "predictions": ("request_id", '"row"', "timestamp"),
    "feedback": ("request_id", '"row"', "batch", "seq"),
}
_ORDER = {
    "predictions": 'timestamp, request_id, "row"',
    "feedback": 'received_at, batch, seq, request_id, "row"',
}


@dataclass(frozen=True)
class Compaction:
    """One partition merged: how many files went into how many rows, and where."""

    kind: Kind
    model: str
    day: date
    files: int
    rows: int
    merged: str


def dedupe_clause(kind: Kind, files: list[str]) -> str:
    """The ``QUALIFY`` that drops rows seen twice, when ``files`` include a merged one."""
    if not any(COMPACTED in f for f in files):
        return ""
    return f" QUALIFY row_number() OVER (PARTITION BY {', '.join(_IDENTITY[kind])}) = 1"


def compact_partition(
    store: SegmentStore, kind: Kind, model: str, day: date, *, min_files: int = 2
) -> Compaction | None:
    """Merge the segments of one day partition; ``None`` if it has fewer than ``min_files``."""
    files = store.files(kind, model, first=day, last=day)
    if len(files) < min_files:
        return None
    # Real write time, not an injected clock: file names order by it across processes.
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
    name = f"part-{stamp}{COMPACTED}{uuid.uuid4().hex}.parquet"
    sql = (
        "SELECT * EXCLUDE (date) FROM "
        "read_parquet($files, hive_partitioning = true, union_by_name = true)"
        f"{dedupe_clause(kind, files)} ORDER BY {_ORDER[kind]}"
    )
    with tempfile.TemporaryDirectory(prefix="shipyard-compact-") as tmp:
        merged = Path(tmp) / name
        try:
            with store.connect() as con:
                relation = con.sql(sql, params={"files": files})
                relation.write_parquet(str(merged), compression="zstd")
        except duckdb.Error as exc:
            raise StoreError(
                f"Could not merge the {kind} segments of {model!r} for {day} in {store.url}: {exc}"
            ) from exc
        rows = pq.read_metadata(merged).num_rows
        target = store.publish_file(kind, model, day, merged, name)
    # Only now that every row is in the merged file may the sources go.
    store.delete_files(files)
    return Compaction(kind, model, day, len(files), rows, target)


def compact(store: SegmentStore, *, min_files: int = 2) -> list[Compaction]:
    """Merge every partition (predictions and labels, every model) holding ``min_files`` or more.

    Today's partition is merged too; segments written while it runs simply
    stay beside the merged file until the next compaction.
    """
    done = []
    for kind in KINDS:
        for model in store.models(kind):
            for partition in store.partitions(kind, model):
                result = compact_partition(store, kind, model, partition.day, min_files=min_files)
                if result is not None:
                    done.append(result)
    return done
