"""``shipyard predict REF --input FILE --output FILE``: score a file or a table in chunks.

Thin: parse the options, open the source and sinks, call
:func:`shipyard.batch.score_file`, render the summary. A Rich progress bar goes
to stderr (so ``--json`` output on stdout stays machine-readable).

Example:
    shipyard predict iris --input rows.parquet --output scores.parquet --rejects bad.csv
    shipyard predict iris:3 --input-db postgresql://... --input-table visits --output s.csv
    shipyard predict iris --input "rows/*.parquet" --output scores/ --workers 2
    shipyard predict iris --input s3://bucket/events/ --output scores/ --cluster tcp://sched:8786
    shipyard predict iris --input s3://bucket/events/ --output s3://bucket/scores/ --workers 2

With ``--workers N``, ``--cluster ADDRESS`` or an input of many files (a folder,
a glob, a partitioned dataset) the same chunk scorer runs once per partition
on a Dask cluster (:mod:`shipyard.batch.parallel`); Dask is imported only then.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from shipyard.batch import DEFAULT_CHUNK_SIZE, BatchSummary, score_file
from shipyard.batch.parallel import WorkerTools
from shipyard.batch.remote_output import check_remote_url, is_remote
from shipyard.batch.scorer import ChunkResult, ProgressCallback
from shipyard.batch.writers import check_output_folder, open_sink
from shipyard.cli._common import console, err_console, get_client, print_json, to_jsonable
from shipyard.errors import InvalidInputError
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.records import PredictionBatch
from shipyard.tables import ChunkSource, SqlSource, open_source, storage_options
from shipyard.tables.locations import is_table_file
from shipyard.tables.memory import malloc_buffers

if TYPE_CHECKING:
    from shipyard.config import Settings

#: How many rejected rows the summary lists; the rejects file holds all of them.
REJECTS_SHOWN = 10
#: A Parquet file with more rows than this is split by row groups over the workers.
PARTITION_ROWS = 500_000


def predict_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model reference: iris, iris@staging or iris:3."),
    input: str | None = typer.Option(
        None,
        "--input",
        "-i",
        metavar="TABLE",
        help="Table to score: a Parquet, CSV or JSON lines file (format from the extension; "
        "also .gz and s3://) or a database URL#TABLE / URL#SELECT ....",
    ),
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        help="Where to write the scores (.parquet or .csv); with --workers/--cluster a "
        "folder, or an s3:// prefix.",
    ),
    chunk_size: int = typer.Option(
        DEFAULT_CHUNK_SIZE, "--chunk-size", min=1, help="Rows read, checked and scored at once."
    ),
    id_column: str | None = typer.Option(
        None,
        "--id-column",
        help="Input column to keep as the row id (default: row_id, the 0-based row number).",
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Write rows that break the signature here, with a reject_reason."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first bad row (exit 1) instead of setting it aside."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="Output format, parquet or csv (default: from --output's extension)."
    ),
    input_db: str | None = typer.Option(
        None,
        "--input-db",
        help="SQLAlchemy URL of a database to read from, with --input-table or --input-query.",
    ),
    input_table: str | None = typer.Option(
        None, "--input-table", help="Table to score (schema.table allowed), with --input-db."
    ),
    input_query: str | None = typer.Option(
        None, "--input-query", help="SELECT query whose rows to score, with --input-db."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Score partitions in parallel on a local Dask cluster of N worker processes "
        "(default with a folder or glob input: the machine's cores).",
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        metavar="ADDRESS",
        help="Score partitions on an existing Dask scheduler, e.g. tcp://scheduler:8786.",
    ),
    single_file: bool = typer.Option(
        False,
        "--single-file",
        help="With --workers/--cluster: write one Parquet file instead of one per partition.",
    ),
    partition_rows: int = typer.Option(
        PARTITION_ROWS,
        "--partition-rows",
        min=1,
        help="With --workers/--cluster: a Parquet file larger than this is split by row groups.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score a Parquet/CSV/JSON lines file or a SQL table with a registered model, in chunks."""
    client = get_client(ctx)
    if workers is not None and cluster is not None:
        raise InvalidInputError(
            "Give --workers N (a local cluster) or --cluster ADDRESS, not both."
        )
    if is_remote(output) and workers is None and cluster is None and not _many_files(input):
        raise InvalidInputError(
            f"--output {output!r}: an s3:// output is written by a parallel job; add "
            "--workers N (a local Dask cluster) or --cluster ADDRESS."
        )
    if workers is not None or cluster is not None or _many_files(input):
        _predict_parallel(
            client,
            ref,
            input=input,
            output=output,
            sql=input_db is not None,
            fmt=fmt,
            chunk_size=chunk_size,
            id_column=id_column,
            rejects=rejects,
            strict=strict,
            workers=workers,
            cluster=cluster,
            single_file=single_file,
            partition_rows=partition_rows,
            as_json=as_json,
        )
        return
    source = _source(input, input_db, input_table, input_query, storage_options(client.settings))
    if input is not None and Path(input).resolve() == Path(output).resolve():
        raise typer.BadParameter("must differ from --input", param_hint="--output")
    sink = open_sink(Path(output), fmt=fmt)
    reject_sink = open_sink(rejects) if rejects is not None else None
    # Before loading the model or scoring a row: a typo in a folder name costs nothing.
    check_output_folder(output)
    if rejects is not None:
        check_output_folder(rejects, what="--rejects")
    model = client.registry.load(ref)
    job_id = f"batch-{uuid.uuid4().hex[:12]}"
    log = client.prediction_log
    # A fresh process streaming every row once: malloc's small pages, not Arrow's
    # default huge ones that the kernel zeroes whole (see shipyard.tables.memory).
    with (
        _logged_job(log, model.name, job_id),
        _progress_bar(f"Scoring with {model.ref}", disable=as_json) as progress,
        malloc_buffers(),
    ):
        summary = score_file(
            model,
            source,
            sink,
            chunk_size=chunk_size,
            strict=strict,
            rejects=reject_sink,
            id_column=id_column,
            progress=progress,
            on_chunk=_chunk_logger(log, job_id),
        )
    log.close()  # flush: the job's rows are on disk when we exit
    if as_json:
        print_json({**to_jsonable(summary), "job_id": job_id})
        return
    _render(summary)
    console.print(
        f"Logged as prediction job {job_id}: labels join as "
        '{"request_id": "' + job_id + '", "row": <row number>}.'
    )


def _many_files(path: str | None) -> bool:
    """True for a folder, a glob or a name with no table extension (a dataset prefix)."""
    if path is None or ("://" in path and not path.lower().startswith(("s3://", "s3a://"))):
        return False
    if any(c in path for c in "*?["):
        return True
    if "://" not in path and Path(path).is_dir():
        return True
    return path.endswith("/") or not is_table_file(path)


def _predict_parallel(
    client: Any,
    ref: str,
    *,
    input: str | None,
    output: str,
    sql: bool,
    fmt: str | None,
    chunk_size: int,
    id_column: str | None,
    rejects: Path | None,
    strict: bool,
    workers: int | None,
    cluster: str | None,
    single_file: bool,
    partition_rows: int,
    as_json: bool,
) -> None:
    """Score the input's partitions on a Dask cluster (see shipyard.batch.parallel)."""
    from shipyard.batch.parallel import open_cluster, score_partitions
    from shipyard.tables.datasets import plan_partitions

    if sql or input is None:
        raise InvalidInputError(
            "--workers and --cluster score files (a file, a folder, a glob or a partitioned "
            "Parquet dataset); a database table is scored by one process: drop --workers."
        )
    if (fmt or "parquet").lower() != "parquet" or output.lower().rstrip("/").endswith(".csv"):
        raise InvalidInputError(
            f"A parallel job writes Parquet; --output {output!r} asks for CSV. Name a "
            "folder (one file per partition) or a .parquet file with --single-file."
        )
    if is_remote(output):
        check_remote_url(output)
        _check_remote_output(input, output, rejects)
    elif "://" in output:
        raise InvalidInputError(
            f"--output {output!r}: a parallel job writes to a local or shared folder, or to "
            "an s3:// prefix."
        )
    else:
        check_output_folder(output)
        # Absolute before anything goes to a worker: a worker of an existing cluster runs
        # in its own directory, where a relative path names another place (or none).
        output = os.path.abspath(output)
        resolved = Path(output).resolve()
        if "://" not in input and (
            Path(input).resolve() == resolved or resolved.is_relative_to(Path(input).resolve())
        ):
            raise typer.BadParameter("must be outside --input", param_hint="--output")
    if rejects is not None:
        check_output_folder(rejects, what="--rejects")
    if "://" not in input:
        input = os.path.abspath(input)
    options = storage_options(client.settings)
    partitions = plan_partitions(input, partition_rows=partition_rows, storage_options=options)
    if workers is not None and len(partitions) < workers:
        err_console.print(
            f"[yellow]The input is {len(partitions)} partition(s) for {workers} workers: a "
            "partition is a file, or whole Parquet row groups, so some workers will idle. "
            "Write Parquet with smaller row groups (row_group_size=...) to spread one file."
        )
    version = client.registry.resolve(ref)
    job_id = f"batch-{uuid.uuid4().hex[:12]}"
    setup = PredictWorkerSetup(settings=client.settings, ref=version.ref, job_id=job_id)
    # The log's rows are settled after the cluster is closed: a local cluster's workers,
    # still running partitions of a failed job, are gone by then.
    with (
        _logged_job(client.prediction_log, version.model, job_id) as attempts,
        _progress_bar(f"Scoring with {version.ref}", disable=as_json) as progress,
        open_cluster(workers=workers, address=cluster) as dask,
    ):
        scored = score_partitions(
            dask,
            setup,
            partitions,
            output if is_remote(output) else Path(output),
            source=input,
            model_ref=version.ref,
            chunk_size=chunk_size,
            strict=strict,
            id_column=id_column,
            rejects=rejects,
            single_file=single_file,
            storage_options=options,
            progress=progress,
        )
        attempts.update(scored.attempts)
        summary, loads = scored.summary, scored.model_loads
        n_workers = len(dask.scheduler_info().get("workers", {}))
    extra = {"job_id": job_id, "partitions": len(partitions), "workers": n_workers}
    if as_json:
        print_json({**to_jsonable(summary), **extra, "model_loads": loads})
        return
    _render(summary)
    console.print(
        f"{len(partitions)} partition(s) on {n_workers} Dask worker(s). Logged as prediction "
        f"job {job_id}: labels join as " + '{"request_id": "' + job_id + '", "row": <row number>}.'
    )


def _check_remote_output(input: str, output: str, rejects: Path | None) -> None:
    """An s3:// output replaces everything under its prefix: never the input's objects."""
    # Typer made --rejects a Path, which folds "s3://" into "s3:/".
    if rejects is not None and str(rejects).lower().startswith(("s3:/", "s3a:/")):
        raise InvalidInputError(
            f"--rejects {str(rejects)!r}: the rejects file is written locally; name a local path."
        )
    out = output.rstrip("/") + "/"
    source = input.split("*", 1)[0]  # a glob's fixed part
    if is_remote(source) and (source.startswith(out) or out.startswith(source.rstrip("/") + "/")):
        raise typer.BadParameter(
            "must be outside --input: publishing replaces every object under it",
            param_hint="--output",
        )


class PredictWorkerSetup:
    """What a Dask worker needs to score: loads the model (verifying every file) once
    per worker process and logs its chunks under the job's id (picklable)."""

    def __init__(self, settings: Settings, ref: str, job_id: str) -> None:
        self.settings = settings
        self.ref = ref
        self.job_id = job_id

    @property
    def key(self) -> str:
        return f"{self.job_id}:{self.ref}"

    def __call__(self) -> WorkerTools:
        from shipyard._client import Shipyard

        client = Shipyard(self.settings)
        model = client.registry.load(self.ref)
        log = client.prediction_log

        def flush() -> None:
            log.flush()

        def log_chunks(attempt: str) -> Callable[[ChunkResult], None]:
            return _chunk_logger(log, self.job_id, stage=f"{self.job_id}.{attempt}")

        return WorkerTools(model=model, log_chunks=log_chunks, flush=flush)


@contextmanager
def _logged_job(log: PredictionLog, model: str, job_id: str) -> Iterator[set[str]]:
    """The job's log rows, staged while it runs, become visible only if it succeeds.

    Drift windows and the monitor job must not count the rows of a job that failed
    (and may be run again): on failure its staged segments are deleted instead.
    A parallel job adds the partition attempts it used to the set this yields: only
    their rows are published (a worker killed mid-partition logged rows that the
    partition's retry logs again).
    """
    attempts: set[str] = set()
    started = log.clock.now()
    try:
        yield attempts
    except BaseException:
        try:
            log.settle_job(model, job_id, publish=False, started=started)
        except Exception as exc:  # the job's own error matters more; say what is left
            err_console.print(
                f"[yellow]Could not delete the failed job's staged log segments ({exc}); "
                "they are never read and go with their day's retention."
            )
        raise
    log.settle_job(model, job_id, publish=True, keep=attempts, started=started)


def _chunk_logger(
    log: PredictionLog, job_id: str, *, stage: str | None = None
) -> Callable[[ChunkResult], None]:
    """Every scored chunk goes to the prediction log under the job's id, rows
    numbered as in the input, so late labels and drift see batch traffic too.
    Its segments are staged under ``stage`` (default: the job's id; on a worker
    ``<job id>.<attempt>``) until the job ends (:func:`_logged_job`)."""

    def log_chunk(chunk: ChunkResult) -> None:
        log.write(
            stage=stage or job_id,
            batch=PredictionBatch(
                request_id=job_id,
                timestamp=log.clock.now(),
                model=chunk.model_name,
                version=int(chunk.model_version or 0),
                inputs=chunk.inputs,
                predictions=chunk.predictions,
                probabilities=chunk.probabilities,
                classes=chunk.classes,
                latency_seconds=chunk.predict_seconds,
                source="batch",
                first_row=chunk.offset,
                rows=chunk.rows,
            ),
        )

    return log_chunk


def _source(
    path: str | None,
    db: str | None,
    table_name: str | None,
    query: str | None,
    options: dict[str, Any],
) -> ChunkSource:
    # InvalidInputError, not a usage error: one line saying which option to give.
    if db is None:
        if table_name is not None or query is not None:
            raise InvalidInputError(
                "--input-table and --input-query need --input-db URL (the database to read)."
            )
        if path is None:
            raise InvalidInputError(
                "Nothing to score: give a file to score with --input FILE, or --input-db URL "
                "with --input-table NAME or --input-query SQL."
            )
        return open_source(path, storage_options=options)
    if path is not None:
        raise InvalidInputError("Give --input FILE or --input-db URL, not both.")
    if (table_name is None) == (query is None):
        raise InvalidInputError(
            "--input-db needs the rows to score: give exactly one of --input-table NAME or "
            "--input-query SQL."
        )
    return SqlSource(db, table=table_name, query=query)


@contextmanager
def _progress_bar(description: str, *, disable: bool) -> Iterator[ProgressCallback]:
    """A Rich progress bar on stderr, fed by score_file's progress callback."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=disable or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _render(summary: BatchSummary) -> None:
    rows = [
        ["model", summary.model],
        ["input", summary.source],
        ["output", summary.output],
        ["rows read", f"{summary.rows_read:,}"],
        ["rows scored", f"{summary.rows_scored:,}"],
        ["rows rejected", f"{summary.rows_rejected:,}"],
        ["time", f"{summary.seconds:.2f} s"],
        ["rows/s", f"{summary.rows_per_second:,.0f}"],
    ]
    if summary.rejects_output is not None:
        rows.append(["rejects file", summary.rejects_output])
    out = Table(title="Batch scoring", title_justify="left", show_header=False)
    out.add_column(style="bold")
    out.add_column()
    for name, value in rows:
        out.add_row(name, value)
    console.print(out)
    if not summary.rows_rejected:
        return
    shown = summary.rejects[:REJECTS_SHOWN]
    console.print(
        f"[yellow]{summary.rows_rejected:,} row(s) broke the signature and were set aside:"
    )
    for reject in shown:
        console.print(f"  row {reject.row}: {reject.reason}", highlight=False, markup=False)
    if summary.rows_rejected > len(shown):
        console.print(f"  ... and {summary.rows_rejected - len(shown):,} more")
    if summary.rejects_output is None:
        console.print("Write them all with --rejects FILE, or stop at the first with --strict.")
