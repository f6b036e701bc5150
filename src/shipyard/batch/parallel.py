"""Batch scoring on many cores or many machines: the chunk scorer, one partition per Dask task.

:func:`score_partitions` runs :func:`~shipyard.batch.scorer.score_file` on every
partition of the input (:mod:`shipyard.tables.datasets`) on a Dask distributed
cluster: a local one of worker processes (:func:`open_cluster` with a worker
count) or an existing scheduler (an address). What the workers need to score
(the model, where its predictions are logged) comes from a picklable
:class:`WorkerSetup`; each worker process calls it once and keeps the result, so a
worker loads and verifies the model package once however many partitions it scores.

Writing is atomic for the whole dataset. Workers write into a hidden staging
folder beside the output (it must be on storage every worker sees: a local
folder for a local cluster, a shared one for a remote cluster); each attempt
of a partition writes its own file (a random token in its name), and only
the files of the attempts whose results the scheduler returned are kept. A
worker that dies mid-partition leaves at most a stray attempt file, removed
before the folder is published, and the scheduler runs the partition again
elsewhere: no partition is lost or written twice. Its logged rows are staged
under the attempt too, and the caller publishes only the attempts returned in
:class:`PartitionsScored` (the rows a dead attempt logged are deleted, not
counted twice). The staging folder becomes
the output with one rename at the end (an older output of that name is
replaced only then); a failed job deletes it, so nothing under the output's
name ever looks complete unless it is.

Row numbers run across the whole input (file after file, in path order): the
Parquet footers give each partition's first row, and CSV / JSON files are
counted first, by the workers, in parallel.

Shipyard's own errors (a bad row with ``strict``, a missing column) come back
as results and stop the job at once; anything else (an I/O error) is retried
``retries`` times by Dask before failing the job.

>>> with open_cluster(workers=2) as client:                              # doctest: +SKIP
...     scored = score_partitions(client, setup, plan, "scores/")
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import pyarrow.parquet as pq

from shipyard.batch.remote_output import SUCCESS_FILE, RemoteOutput, is_remote, upload
from shipyard.batch.scorer import (
    REJECTS_KEPT,
    BatchModel,
    BatchSummary,
    ChunkResult,
    ProgressCallback,
    Reject,
    score_file,
)
from shipyard.batch.writers import (
    ParquetSink,
    create_temp_folder,
    open_sink,
    release_temp_folder,
    remove_stale_temp_files,
)
from shipyard.errors import InvalidInputError, ShipyardError, StoreError
from shipyard.tables import ChunkSource, ParquetSource, open_source
from shipyard.tables.datasets import Partition

#: Extra attempts Dask makes at a partition whose task raised (an I/O error...).
DEFAULT_RETRIES = 2
_COUNT_CHUNK = 1_000_000


ChunkObserver = Callable[[ChunkResult], None]


@dataclass
class WorkerTools:
    """What a worker process keeps between partitions: the model and the log's hooks.

    ``log_chunks(attempt)`` gives the observer that logs one attempt's chunks (staged
    under that attempt, so the driver publishes only the attempts it used).
    """

    model: BatchModel
    log_chunks: Callable[[str], ChunkObserver] | None = None
    flush: Callable[[], None] = field(default=lambda: None)


class WorkerSetup(Protocol):
    """Picklable recipe for a worker's :class:`WorkerTools`; ``key`` names it in the cache."""

    @property
    def key(self) -> str: ...

    def __call__(self) -> WorkerTools: ...


# One entry per setup a worker process has seen (normally exactly one per job).
_TOOLS: dict[str, WorkerTools] = {}
_TOOLS_LOCK = threading.Lock()


def _worker_tools(setup: WorkerSetup) -> tuple[WorkerTools, bool]:
    """This process's tools for ``setup``, made on first use; True when made just now."""
    with _TOOLS_LOCK:
        tools = _TOOLS.get(setup.key)
        if tools is not None:
            return tools, False
        tools = setup()
        _TOOLS[setup.key] = tools
        return tools, True


@dataclass(frozen=True)
class PartitionTask:
    """What one task scores, and how."""

    partition: Partition
    first_row: int
    staging: str
    chunk_size: int
    strict: bool
    id_column: str | None
    rejects: bool
    storage_options: dict[str, Any]
    progress_topic: str | None = None
    #: Row number of the partition's first row within its file (a Parquet file split
    #: by row groups has partitions starting mid-file).
    file_row: int = 0
    #: Names a Dask lock and event guarding an s3:// staging prefix (see _staging_open).
    staging_guard: str | None = None


@dataclass(frozen=True)
class PartitionDone:
    """A task's result: the files it wrote in the staging folder and its counters."""

    index: int
    output: str = ""
    rejects: str | None = None
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    chunks: int = 0
    kept: tuple[Reject, ...] = ()
    loaded_model: bool = False
    worker_pid: int = 0
    error: ShipyardError | None = None
    #: Names this attempt at the partition; its logged rows are staged under it.
    attempt: str = ""


@dataclass(frozen=True)
class PartitionsScored:
    """What :func:`score_partitions` did: the job's summary, how many times workers
    loaded the model, and the attempts whose results were used (one per partition),
    the only ones whose logged rows may be published."""

    summary: BatchSummary
    model_loads: int
    attempts: frozenset[str]


def partition_source(partition: Partition, storage_options: dict[str, Any]) -> ChunkSource:
    """The chunked source of one partition (a file, or some of a Parquet file's row groups)."""
    where = partition.location
    if where.format == "parquet":
        return ParquetSource(
            where, storage_options=storage_options, row_groups=partition.row_groups
        )
    return open_source(where, storage_options=storage_options)


def count_rows(partition: Partition, storage_options: dict[str, Any]) -> int:
    """Rows of a partition: the footer's count, else one streaming pass over one column."""
    if partition.rows is not None:
        return partition.rows
    source = partition_source(partition, storage_options)
    known = source.total_rows()
    if known is not None:
        return known
    first = source.columns()[:1]
    return sum(len(chunk) for chunk in source.chunks(first, _COUNT_CHUNK))


def score_partition(setup: WorkerSetup, task: PartitionTask) -> PartitionDone:
    """Runs on a worker: score one partition into its own file in the staging folder.

    With an ``s3://`` staging prefix the files are written on the worker's disk first
    and uploaded once complete (see :mod:`shipyard.batch.remote_output`).
    """
    if not is_remote(task.staging):
        return _score_partition(setup, task, Path(task.staging))
    with tempfile.TemporaryDirectory(prefix="shipyard-partition-") as local:
        done = _score_partition(setup, task, Path(local))
        if done.error is None:
            names = [done.output] + ([done.rejects] if done.rejects else [])
            with _staging_open(task.staging_guard) as still_open:
                if still_open:
                    for name in names:
                        upload(Path(local) / name, f"{task.staging}/{name}", task.storage_options)
        return done


@contextlib.contextmanager
def _staging_open(guard: str | None) -> Iterator[bool]:
    """Whether the job still wants uploads, holding the job's lock meanwhile.

    A failed job deletes its S3 staging prefix while other partitions may still be
    running (Dask cannot stop a running task). Under the lock, an upload either ends
    before the driver deletes the prefix (and is deleted with it) or starts after the
    driver marked the job closed (and is skipped): nothing is left behind.
    """
    if guard is None:
        yield True
        return
    from distributed import Event, Lock

    with Lock(guard):
        yield not Event(guard).is_set()


def _close_staging(guard: str) -> contextlib.AbstractContextManager[Any]:
    """The driver's side of :func:`_staging_open`: mark the job closed, under the lock."""
    from distributed import Event, Lock

    lock = Lock(guard)

    @contextlib.contextmanager
    def closed() -> Iterator[None]:
        with lock:
            Event(guard).set()
            yield

    return closed()


def _score_partition(setup: WorkerSetup, task: PartitionTask, staging: Path) -> PartitionDone:
    tools, loaded = _worker_tools(setup)
    part = task.partition
    token = secrets.token_hex(4)
    attempt = f"p{part.index:05d}.{token}"
    out = ParquetSink(staging / f"part-{part.index:05d}.{token}.parquet")
    rejects = ParquetSink(staging / f"rejects-{part.index:05d}.{token}.parquet")
    try:
        summary = score_file(
            tools.model,
            partition_source(part, task.storage_options),
            out,
            chunk_size=task.chunk_size,
            strict=task.strict,
            rejects=rejects if task.rejects else None,
            id_column=task.id_column,
            on_chunk=None if tools.log_chunks is None else tools.log_chunks(attempt),
            progress=_progress_reporter(task),
            first_row=task.first_row,
            file_row=task.file_row,
            # Dask runs as many tasks at once as the worker has threads: that is the
            # parallelism; a second predicting thread per task would only compete.
            predict_threads=1,
        )
        tools.flush()  # the partition's predictions are in the log before it counts as done
    except ShipyardError as exc:
        # A user's error: no retry would change it, so it comes back as a result.
        return PartitionDone(
            part.index, error=exc, loaded_model=loaded, worker_pid=os.getpid(), attempt=attempt
        )
    return PartitionDone(
        index=part.index,
        output=out.path.name,
        rejects=rejects.path.name if task.rejects else None,
        rows_read=summary.rows_read,
        rows_scored=summary.rows_scored,
        rows_rejected=summary.rows_rejected,
        chunks=summary.chunks,
        kept=summary.rejects,
        loaded_model=loaded,
        worker_pid=os.getpid(),
        attempt=attempt,
    )


def _progress_reporter(task: PartitionTask) -> ProgressCallback | None:
    """Per chunk, the partition's rows done, as an event on the scheduler for the client."""
    if task.progress_topic is None:
        return None
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not on a Dask worker (called directly)
        return None
    topic, index = task.progress_topic, task.partition.index

    def report(done: int, total: int | None) -> None:
        worker.log_event(topic, {"partition": index, "rows": done})

    return report


# -- the driver ----------------------------------------------------------------------


@contextlib.contextmanager
def open_cluster(workers: int | None = None, address: str | None = None) -> Iterator[Any]:
    """A Dask client: to the scheduler at ``address``, or to a new local cluster of processes.

    A local cluster has ``workers`` worker processes (default: the machine's cores),
    each running as many partitions at once as it has cores to itself (one, unless
    fewer workers than cores were asked for); the scorer's reader and writer threads
    overlap I/O within each. It is shut down when the block ends.
    """
    import logging

    from distributed import Client, LocalCluster

    if address is not None:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise InvalidInputError(
                f"Cannot reach the Dask scheduler at {address!r} ({exc}); expected the "
                "address `dask scheduler` prints, e.g. tcp://scheduler:8786."
            ) from exc
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {n}.")
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=max(1, (os.cpu_count() or 1) // n),
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster) as client:
        yield client


def staging_folder(output: Path) -> Path:
    """A new hidden folder beside ``output``; a later job removes it if this one was killed."""
    parent = output.parent
    if not parent.is_dir():
        raise InvalidInputError(
            f"Cannot write {str(output)!r}: folder {str(parent)!r} does not exist."
        )
    remove_stale_temp_files(parent)
    return create_temp_folder(parent, output.name)


def score_partitions(
    client: Any,
    setup: WorkerSetup,
    partitions: Sequence[Partition],
    output: Path | str,
    *,
    source: str,
    model_ref: str,
    chunk_size: int,
    strict: bool = False,
    id_column: str | None = None,
    rejects: Path | None = None,
    single_file: bool = False,
    storage_options: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    retries: int = DEFAULT_RETRIES,
) -> PartitionsScored:
    """Score ``partitions`` on the cluster behind ``client`` into ``output``.

    ``output`` becomes a folder of Parquet files, one per partition
    (``<input sub-folder>/part-00007.parquet``, so a partitioned dataset keeps its
    folders), with a ``_SUCCESS`` file; with ``single_file`` one Parquet file.
    An ``s3://`` output is staged and published as :mod:`shipyard.batch.remote_output`
    describes (the ``_SUCCESS`` object, written last, lists the files).
    ``rejects`` is one local file (CSV or Parquet) gathering every partition's rejects.
    Returns the summary, how many times workers loaded the model, and the attempts
    used (see :class:`PartitionsScored`).
    """
    options = dict(storage_options or {})
    start = time.monotonic()
    if not is_remote(output):
        # Workers may run in another directory: they get absolute paths only.
        output = Path(os.path.abspath(output))
    remote = RemoteOutput(str(output), options) if is_remote(output) else None
    staging = remote.new_staging() if remote is not None else str(staging_folder(Path(output)))
    topic = f"shipyard-batch-{secrets.token_hex(6)}"
    guard = f"{topic}-staging" if remote is not None else None
    done_rows: dict[int, int] = {}
    futures: list[Any] = []
    try:
        counts = _first_rows(client, partitions, options)
        total = sum(counts)
        if progress is not None:
            progress(0, total)

            def on_event(event: Any) -> None:
                # Events may arrive after their partition's result: never count backwards.
                _, message = event
                index = int(message["partition"])
                done_rows[index] = max(done_rows.get(index, 0), int(message["rows"]))
                progress(sum(done_rows.values()), total)

            client.subscribe_topic(topic, on_event)
        tasks = []
        first = file_start = 0
        for i, (part, rows) in enumerate(zip(partitions, counts, strict=True)):
            if i == 0 or partitions[i - 1].path != part.path:
                file_start = first
            tasks.append(
                PartitionTask(
                    partition=part,
                    first_row=first,
                    staging=staging,
                    chunk_size=chunk_size,
                    strict=strict,
                    id_column=id_column,
                    rejects=rejects is not None,
                    storage_options=options,
                    progress_topic=topic if progress is not None else None,
                    file_row=first - file_start,
                    staging_guard=guard,
                )
            )
            first += rows
        futures = [
            client.submit(
                score_partition,
                setup,
                task,
                key=f"shipyard-score-{topic}-{task.partition.index:05d}",
                retries=retries,
                pure=False,
            )
            for task in tasks
        ]
        results = _gather(futures, partitions, done_rows, progress, total)
        ordered = [results[p.index] for p in partitions]
        if progress is not None:
            client.unsubscribe_topic(topic)
            progress(sum(r.rows_read for r in ordered), total)
        if rejects is not None:
            _merge_rejects(_staged_opener(staging, remote), ordered, rejects)
        if remote is not None:
            _publish_remote(remote, staging, ordered, partitions, single_file=single_file)
        else:
            _publish(Path(staging), ordered, partitions, Path(output), single_file=single_file)
    except BaseException:
        for future in futures:
            future.cancel()
        if remote is not None and guard is not None:
            with _close_staging(guard):
                remote.discard(staging)
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if remote is None:
            release_temp_folder(Path(staging))
        if progress is not None:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(topic)
    seconds = max(time.monotonic() - start, 1e-9)
    rows_read = sum(r.rows_read for r in ordered)
    kept = [k for r in ordered for k in r.kept][:REJECTS_KEPT]
    summary = BatchSummary(
        model=model_ref,
        source=source,
        output=str(output),
        rejects_output=None if rejects is None else str(rejects),
        rows_read=rows_read,
        rows_scored=sum(r.rows_scored for r in ordered),
        rows_rejected=sum(r.rows_rejected for r in ordered),
        chunks=sum(r.chunks for r in ordered),
        seconds=seconds,
        rows_per_second=rows_read / seconds,
        rejects=tuple(kept),
    )
    return PartitionsScored(
        summary=summary,
        model_loads=sum(r.loaded_model for r in ordered),
        attempts=frozenset(r.attempt for r in ordered),
    )


def _gather(
    futures: list[Any],
    partitions: Sequence[Partition],
    done_rows: dict[int, int],
    progress: ProgressCallback | None,
    total: int,
) -> dict[int, PartitionDone]:
    """Every partition's result, or the error of the first failed partition in input order.

    A failed partition (a bad row with ``strict``, a missing column) cancels the
    partitions after it, but those before it still finish: one of them may hold an
    earlier bad row, and ``--strict`` promises the first one in input order.
    """
    from distributed import as_completed

    index_of = {future.key: task for task, future in enumerate(futures)}
    results: dict[int, PartitionDone] = {}
    first_error: tuple[int, ShipyardError] | None = None
    for future in as_completed(futures):
        index = index_of[future.key]
        if future.cancelled() or (first_error is not None and index > first_error[0]):
            continue
        result = _result(future, partitions)
        if result.error is not None:
            first_error = (index, result.error)
            for later in futures:
                if index_of[later.key] > index:
                    later.cancel()
        else:
            results[index] = result
            done_rows[index] = result.rows_read
            if progress is not None:
                progress(sum(done_rows.values()), total)
        if first_error is not None and all(i in results for i in range(first_error[0])):
            raise first_error[1]
    if first_error is not None:  # not reached: the loop raises once the earlier ones are in
        raise first_error[1]
    return {partitions[i].index: result for i, result in results.items()}


def _first_rows(client: Any, partitions: Sequence[Partition], options: dict[str, Any]) -> list[int]:
    """Each partition's row count: from the footers, or counted by the workers in parallel."""
    counts: list[int | None] = [p.rows for p in partitions]
    unknown = [p for p in partitions if p.rows is None]
    if unknown:
        futures = client.map(count_rows, unknown, storage_options=options, pure=False)
        for part, future in zip(unknown, futures, strict=True):
            counts[part.index] = int(_result(future, partitions))
    return [int(c or 0) for c in counts]


def _result(future: Any, partitions: Sequence[Partition]) -> Any:
    """The future's value; a task that kept killing its workers becomes one clear error."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        raise StoreError(
            f"Dask workers died {exc.args[0] if exc.args else ''} while scoring; the "
            "scheduler gave up after its allowed failures (distributed.scheduler."
            "allowed-failures). Check the workers' memory limit and logs."
        ) from exc


StagedOpener = Callable[[str], contextlib.AbstractContextManager[Any]]


def _staged_opener(staging: str, remote: RemoteOutput | None) -> StagedOpener:
    """Opens a file of the staging area by name: a local path, or an S3 object."""
    if remote is not None:
        return lambda name: remote.open_staged(staging, name)
    return lambda name: contextlib.nullcontext(Path(staging) / name)


def _merge_rejects(
    open_staged: StagedOpener, results: Sequence[PartitionDone], target: Path
) -> None:
    """Every partition's rejects, in input order, into the one rejects file."""
    sink = open_sink(target)
    try:
        for i, result in enumerate(results):
            assert result.rejects is not None
            with open_staged(result.rejects) as where:
                file = pq.ParquetFile(where)
                if i == 0:  # fixes the columns, even when no partition had a reject
                    sink.write(file.schema_arrow.empty_table())
                for batch in file.iter_batches():
                    sink.write(_table(batch))
                file.close()
        sink.commit()
    except BaseException:
        sink.abort()
        raise


def _table(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def _publish(
    staging: Path,
    results: Sequence[PartitionDone],
    partitions: Sequence[Partition],
    output: Path,
    *,
    single_file: bool,
) -> None:
    """Turn the staging folder into the output: keep the returned files, drop the rest."""
    keep = {r.output for r in results}
    for entry in staging.iterdir():
        if entry.name not in keep:  # stray attempts of dead workers, rejects parts
            entry.unlink(missing_ok=True)
    if single_file:
        _join_parquet((staging / r.output for r in results), ParquetSink(output))
        shutil.rmtree(staging, ignore_errors=True)
        return
    for result, part in zip(results, partitions, strict=True):
        target = staging / _final_name(part)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / result.output, target)
    (staging / SUCCESS_FILE).touch()
    _swap_in(staging, output)


def _join_parquet(sources: Iterable[Any], sink: ParquetSink) -> None:
    """Copy every row group of each Parquet source (a path or an open file) into
    ``sink``, in order, and commit it; a failure aborts the sink (nothing appears)."""
    try:
        for source in sources:
            file = pq.ParquetFile(source)
            for group in range(file.metadata.num_row_groups):
                sink.write(file.read_row_group(group))
            file.close()
        sink.commit()
    except BaseException:
        sink.abort()
        raise


def _final_name(part: Partition) -> str:
    """``day=1/part-00003.parquet``: the input's sub-folder kept, the partition numbered."""
    return str(PurePosixPath(part.relative).parent / f"part-{part.index:05d}.parquet")


def _publish_remote(
    remote: RemoteOutput,
    staging: str,
    results: Sequence[PartitionDone],
    partitions: Sequence[Partition],
    *,
    single_file: bool,
) -> None:
    """Publish the staged files to S3 (see :mod:`shipyard.batch.remote_output`)."""
    if single_file:
        with tempfile.TemporaryDirectory(prefix="shipyard-single-") as local:
            joined = Path(local) / "scores.parquet"

            def staged() -> Iterator[Any]:
                for result in results:
                    with remote.open_staged(staging, result.output) as handle:
                        yield handle

            _join_parquet(staged(), ParquetSink(joined))
            remote.publish_file(joined)
    else:
        files = [
            (result.output, _final_name(part), result.rows_scored)
            for result, part in zip(results, partitions, strict=True)
        ]
        job = {"rows_read": sum(r.rows_read for r in results)}
        remote.publish_dataset(staging, files, job=job)
    remote.discard(staging)


def _swap_in(staging: Path, output: Path) -> None:
    """Rename ``staging`` to ``output``; an older output is moved aside first, then deleted."""
    old: Path | None = None
    if output.exists() or output.is_symlink():
        old = output.parent / f".{output.name}.shipyard-old-{secrets.token_hex(4)}"
        os.replace(output, old)
    try:
        os.replace(staging, output)
    except OSError:
        if old is not None:
            os.replace(old, output)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


__all__ = [
    "DEFAULT_RETRIES",
    "SUCCESS_FILE",
    "PartitionDone",
    "PartitionTask",
    "WorkerSetup",
    "WorkerTools",
    "count_rows",
    "open_cluster",
    "partition_source",
    "score_partition",
    "score_partitions",
]
