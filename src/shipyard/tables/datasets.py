"""Many files as one table: a folder, a glob or a partitioned Parquet dataset, cut into partitions.

A parallel batch job scores an input partition by partition. The input is

- one file (``rows.parquet``),
- a folder, read recursively, such as a partitioned Parquet dataset
  (``events/date=2024-05-01/part-0.parquet`` ...): every file Shipyard reads as a
  table, skipping hidden files and ones starting with ``_`` (``_SUCCESS``,
  ``_metadata``),
- or a glob (``rows/*.csv``, ``s3://bucket/day=*/*.parquet``),

local or on ``s3://``. Files are taken in sorted path order, which fixes the row
numbering: the first file's rows come first. A partition is a whole file, or a run of
a large Parquet file's row groups (at least ``partition_rows`` rows), so a single big
file still spreads over every worker. Only Parquet footers are read here.

>>> plan = plan_partitions("events/", partition_rows=500_000)   # doctest: +SKIP
>>> [(p.relative, p.row_groups, p.rows) for p in plan]          # doctest: +SKIP
[('date=2024-05-01/part-0.parquet', (0, 1), 1000000), ...]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pyarrow.parquet as pq

from shipyard.extras import require_extra
from shipyard.tables.files import READ_ERRORS
from shipyard.tables.locations import TableLocation, is_table_file, locate, table_error

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Partition:
    """One piece of a parallel job's input.

    ``path`` is the file (local path or URL); ``relative`` its path under the
    input's root (the file name for a single file or a glob); ``row_groups`` the
    Parquet row groups it covers (None: the whole file); ``rows`` its row count,
    when known without reading the data (Parquet), else None.
    """

    index: int
    path: str
    relative: str
    row_groups: tuple[int, ...] | None
    rows: int | None

    @property
    def location(self) -> TableLocation:
        return locate(self.path)


def _filesystem(path: str, storage_options: dict[str, Any]) -> tuple[Any, str, str]:
    """(fsspec filesystem, path as the filesystem names it, protocol prefix to put back)."""
    import fsspec  # loads s3fs only for s3:// inputs

    remote = path.lower().startswith(("s3://", "s3a://"))
    if remote:
        require_extra("s3", f"reading {path}")
    fs, stripped = fsspec.core.url_to_fs(path, **(storage_options if remote else {}))
    prefix = path.split("://", 1)[0] + "://" if remote else ""
    return fs, stripped, prefix


def list_files(source: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The table files behind ``source`` (a file, folder or glob), sorted; TableError if none."""
    options = dict(storage_options or {})
    fs, path, prefix = _filesystem(source, options)
    try:
        if _GLOB_CHARS & set(path):
            found = [p for p in fs.glob(path) if fs.isfile(p)]
        elif fs.isdir(path):
            found = fs.find(path)
        elif fs.exists(path):
            return [source]
        else:
            raise table_error(repr(source), "there is no such file, folder or matching file")
    except READ_ERRORS as exc:
        raise table_error(repr(source), f"it cannot be listed: {exc}") from exc
    files = sorted(
        p
        for p in found
        if is_table_file(p)
        and not any(part.startswith((".", "_")) for part in PurePosixPath(_relative(path, p)).parts)
    )
    if not files:
        raise table_error(
            repr(source), "it holds no table file (.parquet, .csv, .jsonl ...) to score"
        )
    return [prefix + p for p in files]


def _relative(source: str, file: str) -> str:
    """``file``'s path under ``source`` (a folder, or a glob's fixed part)."""
    base = source.split("://", 1)[-1]
    name = file.split("://", 1)[-1]
    if _GLOB_CHARS & set(base):
        base = base[: min(base.index(c) for c in _GLOB_CHARS if c in base)].rsplit("/", 1)[0]
    base = base.rstrip("/")
    if name.startswith(base + "/"):
        return name[len(base) + 1 :]
    return PurePosixPath(name).name


def plan_partitions(
    source: str,
    *,
    partition_rows: int,
    storage_options: dict[str, Any] | None = None,
) -> list[Partition]:
    """Cut ``source`` into partitions (see the module doc); Parquet footers are read here."""
    options = dict(storage_options or {})
    if "://" not in source:
        # Absolute, as the listing names the files: a relative folder would lose its
        # key=value sub-folders in _relative, and a worker in another directory could
        # not open a relative file.
        source = os.path.abspath(source)
    partitions: list[Partition] = []
    for file in list_files(source, options):
        relative = _relative(source, file)
        where = locate(file)
        if where.format != "parquet":
            partitions.append(Partition(len(partitions), file, relative, None, None))
            continue
        for groups, rows in _row_group_runs(where, options, partition_rows):
            partitions.append(Partition(len(partitions), file, relative, groups, rows))
    return partitions


def _row_group_runs(
    where: TableLocation, options: dict[str, Any], partition_rows: int
) -> list[tuple[tuple[int, ...] | None, int]]:
    """Runs of consecutive row groups of at least ``partition_rows`` rows (the last may be less)."""
    from shipyard.tables.files import open_file

    with open_file(where, options) as handle:
        try:
            meta = pq.ParquetFile(handle).metadata
        except READ_ERRORS as exc:
            raise table_error(where.describe(), f"not a readable Parquet file ({exc})") from exc
    sizes = [int(meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    if sum(sizes) <= partition_rows or len(sizes) <= 1:
        return [(None, sum(sizes))]
    runs: list[tuple[tuple[int, ...] | None, int]] = []
    current: list[int] = []
    held = 0
    for i, n in enumerate(sizes):
        current.append(i)
        held += n
        if held >= partition_rows:
            runs.append((tuple(current), held))
            current, held = [], 0
    if current:
        runs.append((tuple(current), held))
    return runs


__all__ = ["Partition", "list_files", "plan_partitions"]
