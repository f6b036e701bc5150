"""Parquet segment files, Hive-partitioned by day, on a local folder or any fsspec URL.

Layout under the store's root (a folder, or ``s3://bucket/prefix``)::

    predictions/<model>/date=YYYY-MM-DD/part-<utc time>-<pid>-<uuid>.parquet
    feedback/<model>/date=YYYY-MM-DD/part-<utc time>-<pid>-<uuid>.parquet

Every writer process makes its own files (pid and a random uuid in the name),
so workers never coordinate. A batch job stages its segments: they are written as
``staged-<job>-part-....parquet``, which no reader lists, and
:meth:`SegmentStore.settle_staged` renames them to ``part-...`` when the job
succeeds (or deletes them when it fails), so a failed job's rows are never counted.
A job scored on many workers stages each attempt at a partition apart
(``staged-<job>.<attempt>-part-...``): only the attempts that completed are
published, so rows a dead worker logged before a retry are never counted twice.
A segment appears whole or not at all: locally it is written to a hidden temporary
file and renamed into place; on S3 it is one PUT, which S3 publishes atomically.
Retention deletes whole day partitions.

Reading is DuckDB's job (:mod:`shipyard.monitoring.queries`); this module says
which files hold which days and hands DuckDB a connection that can open them
(for remote stores, through the fsspec filesystem registered with DuckDB).

>>> import tempfile
>>> store = SegmentStore(tempfile.mkdtemp())
>>> store.files("predictions", "iris")
[]
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.clock import utc_now
from shipyard.errors import StoreError, reason
from shipyard.monitoring.records import PROBA_PREFIX
from shipyard.store.filesystems import BACKEND_ERRORS, open_filesystem

__all__ = ["UNASSIGNED", "Partition", "SegmentSink", "SegmentStore"]

Kind = Literal["predictions", "feedback"]
KINDS: tuple[Kind, ...] = ("predictions", "feedback")
#: Folder for labels whose model is not known yet. Model names start with a
#: letter or digit, so this can never clash with one.
UNASSIGNED = "_unassigned"
_DAY_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_PART_RE = re.compile(r"^part-[^/]+\.parquet$")
#: A staged segment's name starts with this, then the stage (a job id) and "-part-...".
STAGED_PREFIX = "staged-"
_STAGE_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Between a staged segment's stage and its own name: "staged-<stage>-part-<...>".
_SEGMENT_MARK = "-part-"
_BACKEND_ERRORS = BACKEND_ERRORS


@dataclass(frozen=True)
class Partition:
    """One day of one model's predictions or labels."""

    kind: Kind
    model: str
    day: date
    path: str


@runtime_checkable
class SegmentSink(Protocol):
    """Where the prediction log's writer puts each batch: one table, one model, one day.

    :class:`SegmentStore` is the real one; tests wrap it to slow the writer down.
    """

    def write_segment(
        self, kind: Kind, model: str, day: date, table: pa.Table, *, stage: str | None = None
    ) -> str:
        """Store ``table`` as a new segment (staged under ``stage``); return where it went."""
        ...


class SegmentStore:
    """Segment files under ``root``: a folder path, ``file://`` URL or ``s3://bucket/prefix``.

    ``storage_options`` go to fsspec unchanged (for s3fs: ``key``, ``secret``,
    ``client_kwargs={"endpoint_url": ...}``). Nothing is touched until the
    first read or write.
    """

    def __init__(self, root: str | Path, storage_options: dict[str, Any] | None = None) -> None:
        text = str(root)
        if "://" not in text or text.startswith("file://"):
            local = Path(text.removeprefix("file://")).absolute()
            self.url = str(local)
            self.is_local = True
        else:
            self.url = text.rstrip("/")
            self.is_local = False
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""

    def __repr__(self) -> str:
        return f"SegmentStore({self.url!r})"

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, created on first use."""
        if self._fs is None:
            self._fs, self._root = open_filesystem(
                self.url, self.storage_options, what="prediction log store"
            )
        return self._fs

    def _path(self, *parts: str) -> str:
        _ = self.fs
        return "/".join([self._root.rstrip("/"), *parts])

    def _public(self, path: str) -> str:
        """The name DuckDB opens: a plain path locally, a full URL remotely."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    # -- writing ---------------------------------------------------------------

    def write_segment(
        self, kind: Kind, model: str, day: date, table: pa.Table, *, stage: str | None = None
    ) -> str:
        """Store ``table`` as a new segment; with ``stage`` (a batch job's id) under a name
        no reader lists until :meth:`settle_staged` publishes it."""
        # Real write time, not an injected clock: file names order by it across processes.
        stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex}.parquet"
        if stage is not None:
            name = f"{_staged_prefix(stage)}{name}"
        folder = self._path(kind, model, f"date={day.isoformat()}")
        target = f"{folder}/{name}"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", use_dictionary=_dictionary_columns(table))
        data = sink.getvalue().to_pybytes()
        try:
            if self.is_local:
                _write_local_atomically(Path(folder), name, data)
            else:
                # One PUT: S3 shows an object only once its upload completed.
                self.fs.pipe_file(target, data)
        except _BACKEND_ERRORS as exc:
            raise StoreError(
                f"Could not write a {kind} segment for {model!r} to {self.url}: {reason(exc)}. "
                f"Check that the store is reachable and writable."
            ) from exc
        return self._public(target)

    def publish_file(self, kind: Kind, model: str, day: date, source: Path, name: str) -> str:
        """Put the local file ``source`` into a partition as ``name``, atomically."""
        folder = self._path(kind, model, f"date={day.isoformat()}")
        target = f"{folder}/{name}"
        try:
            if self.is_local:
                Path(folder).mkdir(parents=True, exist_ok=True)
                tmp = Path(folder) / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
                try:
                    shutil.copyfile(source, tmp)
                    with open(tmp, "rb+") as handle:
                        os.fsync(handle.fileno())
                    os.replace(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
            else:
                # s3fs uploads large files in parts; S3 publishes the object whole.
                self.fs.put_file(str(source), target)
        except _BACKEND_ERRORS as exc:
            raise StoreError(f"Could not store {name} in {self._public(folder)}: {exc}") from exc
        return self._public(target)

    def settle_staged(
        self,
        kind: Kind,
        model: str,
        stage: str,
        *,
        publish: bool,
        keep: Collection[str] | None = None,
        since: date | None = None,
    ) -> int:
        """Publish (rename to ``part-...``) or delete every segment staged under ``stage``
        (and under its attempts, ``<stage>.<attempt>``) for ``model``, in every day
        partition; return how many files were settled.

        With ``keep``, an attempt's segments are published only if the attempt is in
        ``keep`` (the ones whose results the job used) and deleted otherwise: a worker
        that died mid-partition logged rows its retry logs again.

        ``since`` (the day the job started) skips the older day partitions: a job's
        rows are logged on the days it ran, and on S3 each day is one more listing.

        A rename within one folder: atomic locally; on S3 a copy then a delete, so a
        reader sees each segment under one name or the other, never both listed.
        """
        _check_stage(stage)
        settled = 0
        for partition in self.partitions(kind, model):
            if since is not None and partition.day < since:
                continue
            for name, path in self._children(partition.path, dirs=False):
                staged = _staged_under(name, stage)
                if staged is None:
                    continue
                attempt, segment = staged
                kept = keep is None or attempt is None or attempt in keep
                try:
                    if publish and kept:
                        target = f"{partition.path}/{segment}"
                        if self.is_local:
                            os.replace(path, target)
                        else:
                            self.fs.mv(path, target)
                    else:
                        self.fs.rm_file(path)
                except FileNotFoundError:
                    continue
                except _BACKEND_ERRORS as exc:
                    action = "publish" if publish and kept else "delete"
                    raise StoreError(
                        f"Could not {action} the staged segment {self._public(path)}: {exc}"
                    ) from exc
                settled += 1
        return settled

    def delete_files(self, files: list[str]) -> None:
        """Delete segments (as :meth:`files` names them); ones already gone are fine."""
        for name in files:
            try:
                self.fs.rm_file(name)
            except FileNotFoundError:
                continue
            except _BACKEND_ERRORS as exc:
                raise StoreError(f"Could not delete {name}: {exc}") from exc

    # -- listing ---------------------------------------------------------------

    def models(self, kind: Kind) -> list[str]:
        """Names of the models with a folder of ``kind`` (including :data:`UNASSIGNED`)."""
        return sorted(name for name, _ in self._children(self._path(kind)))

    def partitions(self, kind: Kind, model: str) -> list[Partition]:
        """The day partitions of one model, oldest first."""
        found = []
        for name, path in self._children(self._path(kind, model)):
            match = _DAY_RE.match(name)
            if match:
                with contextlib.suppress(ValueError):
                    found.append(Partition(kind, model, date.fromisoformat(match[1]), path))
        return sorted(found, key=lambda p: p.day)

    def files(
        self, kind: Kind, model: str, *, first: date | None = None, last: date | None = None
    ) -> list[str]:
        """Segment files of ``model`` in the day partitions ``first..last`` (inclusive).

        Choosing the partitions here, before DuckDB opens anything, is the
        partition pruning: files of other days are never listed or read.
        """
        out: list[str] = []
        for partition in self.partitions(kind, model):
            if (first is not None and partition.day < first) or (
                last is not None and partition.day > last
            ):
                continue
            out.extend(
                self._public(path)
                for name, path in self._children(partition.path, dirs=False)
                if _PART_RE.match(name)
            )
        return sorted(out)

    def _children(self, path: str, *, dirs: bool = True) -> list[tuple[str, str]]:
        fs = self.fs
        try:
            # s3fs caches listings; other workers write new segments all the time.
            fs.invalidate_cache(path)
            entries = fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        except _BACKEND_ERRORS as exc:
            raise StoreError(f"Could not list {self._public(path)}: {exc}") from exc
        wanted = "directory" if dirs else "file"
        out = []
        for entry in entries:
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry.get("type") == wanted and name:
                out.append((name, entry["name"].rstrip("/")))
        return out

    # -- retention -------------------------------------------------------------

    def prune(self, older_than: timedelta, *, now: datetime) -> list[Partition]:
        """Delete every day partition (predictions and labels) wholly older than ``older_than``.

        A day goes only once all of it is past the cut-off, so nothing younger
        than ``older_than`` is ever deleted.
        """
        cutoff = (now - older_than).astimezone(UTC).date()
        removed = []
        for kind in KINDS:
            for model in self.models(kind):
                for partition in self.partitions(kind, model):
                    if partition.day < cutoff:
                        try:
                            self.fs.rm(partition.path, recursive=True)
                        except FileNotFoundError:  # another process pruned it first
                            continue
                        except _BACKEND_ERRORS as exc:
                            raise StoreError(
                                f"Could not delete {self._public(partition.path)}: {exc}"
                            ) from exc
                        removed.append(partition)
        return removed

    # -- reading ---------------------------------------------------------------

    def connect(
        self, *, memory_limit_mb: int | None = None, threads: int | None = None
    ) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory DuckDB connection that can read this store's files, in UTC.

        ``memory_limit_mb`` and ``threads`` bound what its queries may use (DuckDB
        spills to a temporary folder beyond the memory limit instead of growing).
        """
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        if memory_limit_mb is not None:
            con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
            con.execute("SET preserve_insertion_order = false")
            # The default spill folder is ".tmp" in the working directory, which a
            # server may not be allowed to write.
            spill = Path(tempfile.gettempdir()) / "shipyard-duckdb"
            con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        if not self.is_local:
            con.register_filesystem(self.fs)
        return con


def _staged_prefix(stage: str) -> str:
    _check_stage(stage)
    return f"{STAGED_PREFIX}{stage}-"


def _check_stage(stage: str) -> None:
    if not _STAGE_RE.match(stage) or _SEGMENT_MARK in stage:
        raise StoreError(
            f"A stage name is letters, digits, '_', '.' and '-' (without {_SEGMENT_MARK!r}); "
            f"got {stage!r}."
        )


def _staged_under(name: str, stage: str) -> tuple[str | None, str] | None:
    """For a file staged under ``stage`` or one of its attempts: (the attempt or None,
    the segment's published name); None for any other file."""
    if not name.startswith(STAGED_PREFIX) or _SEGMENT_MARK not in name:
        return None
    owner, _, rest = name[len(STAGED_PREFIX) :].partition(_SEGMENT_MARK)
    segment = f"part-{rest}"
    if owner == stage:
        return None, segment
    if owner.startswith(f"{stage}."):
        return owner[len(stage) + 1 :], segment
    return None


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Every column but the probabilities: dictionary-encoded where values repeat.

    Probabilities are nearly all distinct, so a dictionary for them only costs a hash
    per value before Parquet gives up on it; skipping it made writing a batch job's
    100,000-row segment about a third cheaper and the file no larger.
    """
    return [name for name in table.column_names if not name.startswith(PROBA_PREFIX)]


def _write_local_atomically(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # A dotted ".tmp" name: readers only open "part-*.parquet".
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
