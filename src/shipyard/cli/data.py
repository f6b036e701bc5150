"""``shipyard data ...``: dataset versions (snapshot, list, versions, show, diff, get, prune)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.markup import escape

from shipyard.cli._common import (
    JsonOption,
    command_group,
    console,
    get_client,
    get_settings,
    print_json,
    table,
    when,
)
from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    from shipyard.data.chunking import Piece

T = TypeVar("T")

app = command_group("Dataset versions: snapshot tables, list, show, diff, get them back, prune.")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _load_quietly(load: Callable[[], T]) -> T:
    """``load()`` (which imports pandas, pyarrow and SQLAlchemy) with the cyclic garbage
    collector paused, then everything loaded frozen out of its sight.

    Importing creates several hundred thousand objects and hardly any garbage; the
    collector meanwhile ran every 700 new objects, walking them again and again
    (0.06 to 0.1 s, a tenth of the start-up's CPU time, on the one thread a snapshot waits
    for). Frozen afterwards, a full collection mid-snapshot no longer walks the
    libraries' million objects either (0.1 s holding the GIL every reading and
    encoding thread needs). The collector runs as before for what the command makes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return load()
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _malloc_buffers() -> AbstractContextManager[None]:
    """:func:`~shipyard.tables.memory.malloc_buffers` (importing pyarrow)."""
    from shipyard.tables.memory import malloc_buffers

    return malloc_buffers()


def _read_ahead(ctx: typer.Context, source: str) -> Iterator[Piece] | None:
    """A file source already being read, before the store is opened: decoding its first
    row groups overlaps importing the database layer (about 0.25 s). Other sources
    (SQL, Delta Lake) are read by the snapshot itself."""
    from shipyard.data.sources import is_file_source, read_ahead
    from shipyard.tables.files import storage_options

    if not is_file_source(source):
        return None
    return read_ahead(source, storage_options=storage_options(get_settings(ctx)))


@app.command("snapshot")
def snapshot_command(
    ctx: typer.Context,
    source: str = typer.Argument(
        ...,
        help="A file, a folder, a glob ('data/*.parquet'), URL#TABLE, URL#SELECT ..., "
        "or a Delta Lake table.",
    ),
    name: str = typer.Option(..., "--name", "-n", help="The dataset to add a version to."),
    message: str | None = typer.Option(None, "--message", "-m", help="What this version is."),
    delta: bool = typer.Option(
        False, "--delta", help="SOURCE is a Delta Lake table (implied for a local _delta_log)."
    ),
    delta_version: int | None = typer.Option(
        None, "--delta-version", min=0, help="Pin this version of the Delta Lake table."
    ),
    as_of: datetime | None = typer.Option(
        None, "--as-of", help="Pin the Delta Lake table as it was at this time (ISO 8601)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Store SOURCE as the next immutable version of dataset NAME (only new chunks are stored)."""
    if delta_version is not None and as_of is not None:
        raise InvalidInputError("Give --delta-version or --as-of, not both.")
    if "numpy" not in sys.modules:
        # A snapshot multiplies no matrices, but OpenBLAS starts a thread per core when
        # NumPy loads, which spins for 0.1 s of CPU time (measured with perf stat: 15 %
        # of the command's start-up) on the core the snapshot's threads need next. Read
        # by OpenBLAS when NumPy loads, so only before that; never over the user's value.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    pinned = delta or delta_version is not None or as_of is not None
    with _load_quietly(_malloc_buffers):
        reading = None if pinned else _load_quietly(lambda: _read_ahead(ctx, source))
        versions = _load_quietly(lambda: get_client(ctx).data)
        version = versions.snapshot(
            source,
            name=name,
            message=message,
            delta=delta,
            delta_version=delta_version,
            as_of=as_of,
            reading=reading,
        )
    if as_json:
        print_json(version.to_dict())
        return
    if version.delta is not None:
        console.print(
            f"{version.ref}: {version.n_rows} rows pinned at Delta Lake version "
            f"{version.delta['version']} of {version.source} (no data copied)",
            markup=False,
        )
        return
    console.print(
        f"{version.ref}: {version.n_rows} rows, {len(version.schema)} columns, "
        f"{_size(version.new_bytes)} new of {_size(version.total_bytes)} "
        f"({version.details.get('chunks')} chunks)",
        markup=False,
    )


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List datasets with their newest version."""
    newest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for v in get_client(ctx).datasets.list_versions():
        newest[v.dataset] = v
        counts[v.dataset] = counts.get(v.dataset, 0) + 1
    if as_json:
        print_json([{**v.to_dict(), "versions": counts[n]} for n, v in newest.items()])
        return
    rows = [
        [n, counts[n], v.version, v.n_rows, _size(v.total_bytes), when(v.created_at)]
        for n, v in newest.items()
    ]
    console.print(table("Datasets", ["dataset", "versions", "newest", "rows", "size", "at"], rows))


@app.command("versions")
def versions_command(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """List the versions of dataset NAME, oldest first."""
    versions = get_client(ctx).datasets.list_versions(name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    rows = [
        [
            v.ref,
            v.n_rows,
            _size(v.new_bytes),
            _size(v.total_bytes),
            v.content_hash[:12],
            v.message or "",
            when(v.created_at),
        ]
        for v in versions
    ]
    columns = ["version", "rows", "new when stored", "size", "fingerprint", "message", "at"]
    console.print(table(f"Versions of {name}", columns, rows))


@app.command("show")
def show_command(ctx: typer.Context, ref: str, as_json: bool = JsonOption) -> None:
    """Show NAME:VERSION: schema, rows, bytes stored, fingerprint, runs and models using it."""
    from shipyard.data.usage import DatasetUsers

    client = get_client(ctx)
    version = client.data.resolve(ref)
    users = DatasetUsers(client.datasets, client.models).of(version)
    if as_json:
        print_json(
            {**version.to_dict(), "runs": users.runs, "model_versions": users.model_versions}
        )
        return
    console.print(f"[bold]{escape(version.ref)}[/] {escape(version.message or '')}")
    lines = [
        f"rows:        {version.n_rows}",
        f"columns:     {len(version.schema)}",
        f"stored:      {_size(version.new_bytes)} new, {_size(version.total_bytes)} in all",
        f"fingerprint: {version.content_hash}",
        f"source:      {version.source or 'a DataFrame'}",
        f"created:     {when(version.created_at)} by {version.created_by}",
    ]
    if version.delta is not None:
        lines.append(f"delta:       {version.delta['uri']} at version {version.delta['version']}")
    lines.append(f"runs:        {', '.join(users.runs) or 'none'}")
    lines.append(f"models:      {', '.join(users.model_versions) or 'none'}")
    for line in lines:
        console.print(line, markup=False)
    console.print(table("Schema", ["column", "type"], [[c, t] for c, t in version.schema.items()]))


@app.command("diff")
def diff_command(
    ctx: typer.Context,
    old: str,
    new: str,
    key: list[str] = typer.Option(
        [], "--key", "-k", help="Column(s) identifying a row; then changed rows are counted."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Rows added, removed and changed (by --key) from OLD to NEW, and schema changes."""
    from shipyard.data.diff import diff_versions

    result = diff_versions(get_client(ctx).data, old, new, key=key)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(f"{result.old} -> {result.new}", markup=False)
    console.print(
        f"rows: +{result.added} added, -{result.removed} removed, ~{result.changed} changed, "
        f"{result.unchanged} unchanged" + ("" if key else " (no --key: rows compared whole)"),
        markup=False,
    )
    for label, values in (
        ("columns added", result.columns_added),
        ("columns removed", result.columns_removed),
    ):
        if values:
            console.print(f"{label}: {', '.join(values)}", markup=False)
    for column, (before, after) in result.types_changed.items():
        console.print(f"type of {column}: {before} -> {after}", markup=False)
    for label, keys in result.examples.items():
        if keys:
            console.print(f"e.g. {label}: {', '.join(map(str, keys))}", markup=False)


@app.command("get")
def get_command(
    ctx: typer.Context,
    ref: str,
    output: Path = typer.Option(
        ..., "--output", "-o", help="File to write: .parquet, .csv or .jsonl."
    ),
) -> None:
    """Write NAME:VERSION to a file, one stored chunk at a time (memory stays flat)."""
    version = get_client(ctx).data.write(ref, output)
    console.print(f"wrote {version.ref} ({version.n_rows} rows) to {output}", markup=False)


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this dataset (default: every one)."),
    keep_last: int = typer.Option(1, "--keep-last", min=0, help="Newest versions always kept."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; remove nothing."),
    as_json: bool = JsonOption,
) -> None:
    """Remove old versions and their unshared chunks; never one a run or live model uses."""
    from shipyard.data.usage import DatasetUsers

    client = get_client(ctx)
    users = DatasetUsers(client.datasets, client.models)
    result = client.data.prune(name, keep_last=keep_last, in_use=users.holder, dry_run=dry_run)
    if as_json:
        print_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {len(result.removed)} version(s): {', '.join(result.removed) or 'none'}; "
        f"{result.blobs_removed} blob(s), {_size(result.bytes_freed)}",
        markup=False,
    )
    for ref, holder in result.kept.items():
        console.print(f"kept {ref}: used by {holder}", markup=False)
