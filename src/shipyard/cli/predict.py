"""``shipyard predict REF --input FILE --output FILE``: score a file or a table in chunks.

Thin: parse the options, open the source and sinks, call
:func:`shipyard.batch.score_file`, render the summary. A Rich progress bar goes
to stderr (so ``--json`` output on stdout stays machine-readable).

Example:
    shipyard predict iris --input rows.parquet --output scores.parquet --rejects bad.csv
    shipyard predict iris:3 --input-db postgresql://... --input-table visits --output s.csv
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
from shipyard.batch.scorer import ChunkResult, ProgressCallback
from shipyard.batch.writers import open_sink
from shipyard.cli._common import console, err_console, get_client, print_json, to_jsonable
from shipyard.errors import InvalidInputError
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.records import PredictionBatch
from shipyard.tables import ChunkSource, SqlSource, open_source, storage_options

#: How many rejected rows the summary lists; the rejects file holds all of them.
REJECTS_SHOWN = 10


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
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write the scores (.parquet or .csv)."
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
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score a Parquet/CSV/JSON lines file or a SQL table with a registered model, in chunks."""
    client = get_client(ctx)
    source = _source(input, input_db, input_table, input_query, storage_options(client.settings))
    if input is not None and Path(input).resolve() == output.resolve():
        raise typer.BadParameter("must differ from --input", param_hint="--output")
    sink = open_sink(output, fmt=fmt)
    reject_sink = open_sink(rejects) if rejects is not None else None
    model = client.registry.load(ref)
    job_id = f"batch-{uuid.uuid4().hex[:12]}"
    log_chunk = _chunk_logger(client.prediction_log, job_id)
    with _progress_bar(f"Scoring with {model.ref}", disable=as_json) as progress:
        summary = score_file(
            model,
            source,
            sink,
            chunk_size=chunk_size,
            strict=strict,
            rejects=reject_sink,
            id_column=id_column,
            progress=progress,
            on_chunk=log_chunk,
        )
    client.prediction_log.close()  # flush: the job's rows are on disk when we exit
    if as_json:
        print_json({**to_jsonable(summary), "job_id": job_id})
        return
    _render(summary)
    console.print(
        f"Logged as prediction job {job_id}: labels join as "
        '{"request_id": "' + job_id + '", "row": <row number>}.'
    )


def _chunk_logger(log: PredictionLog, job_id: str) -> Callable[[ChunkResult], None]:
    """Every scored chunk goes to the prediction log under the job's id, rows
    numbered as in the input, so late labels and drift see batch traffic too."""

    def log_chunk(chunk: ChunkResult) -> None:
        log.write(
            PredictionBatch(
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
            )
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
