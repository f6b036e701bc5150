"""Streaming sinks for batch output: Parquet and CSV, written atomically.

A sink writes Arrow tables one chunk at a time into a hidden temporary file
next to the target, and only :meth:`ChunkSink.commit` renames it into place
(``os.replace``, atomic on one file system). A job that fails calls
:meth:`ChunkSink.abort`, which deletes the temporary file: nobody ever sees a
half-written file under the final name, and an older file of that name stays
untouched until the new one is complete.

A job killed outright (``kill -9``, the machine losing power) cannot clean up,
so the temporary name says whose it is: ``.<target>.shipyard-<host>-<pid>-<token>.tmp``.
The next sink that starts writing in that folder removes such files whose
process, on this host, no longer exists; a file of a live process, another host's
or one not named like this is never touched. The file is created with mode
``0o666`` and the kernel applies the user's umask, so the output gets the same
permissions as any file the user creates (a ``mkstemp`` file would stay ``0600``).

The schema is fixed by the first table written; later tables are cast to it,
so a chunk whose predictions came out as int64 joins a float64 column cleanly
and a truly incompatible chunk fails loudly instead of corrupting the file.

Example:
    >>> with open_sink("scores.parquet") as sink:                   # doctest: +SKIP
    ...     sink.write(pa.table({"row_id": [0, 1], "prediction": ["a", "b"]}))
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import secrets
import shutil
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shipyard.errors import InvalidInputError, StoreError


@runtime_checkable
class ChunkSink(Protocol):
    """Where batch output goes, one Arrow table at a time."""

    #: The final path (or a description), for messages.
    description: str

    def write(self, table: pa.Table) -> None:
        """Append ``table``; the first one fixes the schema."""
        ...

    def commit(self) -> None:
        """Finish and publish the output under its final name."""
        ...

    def abort(self) -> None:
        """Throw away everything written; the final name is left as it was."""
        ...


class _TableWriter(Protocol):
    """What pyarrow's Parquet and CSV writers have in common."""

    def write_table(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


class _AtomicFileSink:
    """Shared temp-file-then-rename logic; subclasses open and feed the format writer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(path)
        self._tmp: Path | None = None
        self._schema: pa.Schema | None = None
        self._done = False
        self._writer: _TableWriter | None = None
        self.rows_written = 0

    @property
    def schema(self) -> pa.Schema | None:
        return self._schema

    def write(self, table: pa.Table) -> None:
        if self._done:
            raise StoreError(f"{self.description!r} is already committed or aborted.")
        if self._schema is None:
            self._start(table.schema)
        assert self._schema is not None
        if table.schema != self._schema:
            try:
                table = table.select(self._schema.names).cast(self._schema)
            except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise StoreError(
                    f"A chunk for {self.description!r} does not fit the schema of the first "
                    f"chunk ({exc}); expected {self._schema}."
                ) from exc
        self._write(table)
        self.rows_written += table.num_rows

    def _start(self, schema: pa.Schema) -> None:
        parent = self.path.parent
        if not parent.is_dir():
            raise InvalidInputError(
                f"Cannot write {self.description!r}: folder {str(parent)!r} does not exist."
            )
        remove_stale_temp_files(parent)
        # Same folder as the target, so the final rename never crosses file systems.
        self._tmp = _create_temp_file(parent, self.path.name)
        self._schema = schema
        try:
            self._writer = self._open(self._tmp, schema)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            _release_temp_file(self._tmp)
            raise

    def commit(self) -> None:
        if self._done:
            return
        if self._schema is None:
            raise StoreError(
                f"Nothing was written to {self.description!r}; write at least an empty table "
                "so the file has a schema."
            )
        assert self._tmp is not None
        self._close()
        os.replace(self._tmp, self.path)
        _release_temp_file(self._tmp)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._tmp is not None:
            with contextlib.suppress(Exception):  # the writer may be what broke
                self._close()
            self._tmp.unlink(missing_ok=True)
            _release_temp_file(self._tmp)

    def __enter__(self) -> _AtomicFileSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # -- format hooks --
    def _open(self, tmp: Path, schema: pa.Schema) -> _TableWriter:
        """The format's writer for ``tmp`` (the one hook a format implements)."""
        raise NotImplementedError

    def _write(self, table: pa.Table) -> None:
        assert self._writer is not None
        self._writer.write_table(table)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# -- temporary files ------------------------------------------------------------------------

_TEMP_NAME = re.compile(
    r"^\.(?P<target>.+)\.shipyard-(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp$"
)


def _host() -> str:
    """This machine's name, reduced to characters the temporary-name pattern allows."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "localhost"


# Temporary files this process is writing: a file named with this process's id but
# not listed here was left by an earlier process that had the same id (a container's
# processes often do), so it is stale too.
_OWN_TEMP_FILES: set[str] = set()
_OWN_LOCK = threading.Lock()


def _create_temp_file(folder: Path, target: str) -> Path:
    """A new, empty temporary file for ``target`` in ``folder``, named after this process.

    Mode ``0o666`` minus the umask, as for any file the user creates.
    """
    while True:
        name = f".{target}.shipyard-{_host()}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        path = folder / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        with _OWN_LOCK:
            _OWN_TEMP_FILES.add(name)
        return path


def create_temp_folder(folder: Path, target: str) -> Path:
    """A new hidden folder for ``target`` in ``folder``, named like a temporary file, so a
    later job removes it once this process is gone (a parallel job's staging folder)."""
    while True:
        path = folder / f".{target}.shipyard-{_host()}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        with _OWN_LOCK:
            _OWN_TEMP_FILES.add(path.name)
        return path


def release_temp_folder(path: Path) -> None:
    """Forget ``path`` (renamed into place or deleted)."""
    _release_temp_file(path)


def _release_temp_file(path: Path) -> None:
    with _OWN_LOCK:
        _OWN_TEMP_FILES.discard(path.name)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temporary outputs in ``folder`` left by killed Shipyard jobs on this host.

    Only files named by :func:`_create_temp_file` whose process is gone are removed;
    returns them. Errors (a file removed meanwhile, no permission) are skipped: the
    cleanup must never fail the job that runs it.
    """
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid == os.getpid():
            with _OWN_LOCK:
                if entry.name in _OWN_TEMP_FILES:
                    continue
        elif _process_exists(pid):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):  # a parallel job's staging folder
                shutil.rmtree(entry.path)
                removed.append(Path(entry.path))
    return removed


class ParquetSink(_AtomicFileSink):
    """A Parquet file written with one :class:`pyarrow.parquet.ParquetWriter`.

    Each chunk becomes (at least) one row group, so readers can stream the
    output back in the same bounded memory.

    Example:
        >>> ParquetSink("scores.parquet").description
        'scores.parquet'
    """

    def __init__(self, path: str | Path, *, compression: str = "snappy") -> None:
        super().__init__(path)
        self.compression = compression

    def _open(self, tmp: Path, schema: pa.Schema) -> pq.ParquetWriter:
        # Dictionary-encode only text-like columns (labels, model version). Trying it on
        # probabilities and row ids, whose values are all distinct, costs a hash per
        # value for nothing; skipping it makes writing about 40% cheaper.
        textual = [
            f.name
            for f in schema
            if pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)
            or pa.types.is_dictionary(f.type)
            or pa.types.is_boolean(f.type)
        ]
        return pq.ParquetWriter(
            tmp, schema, compression=self.compression, use_dictionary=textual or False
        )


class CsvSink(_AtomicFileSink):
    """A CSV file with a header row, values quoted only where CSV needs it.

    ``0,setosa,0.98,iris:3`` rather than pyarrow's default, which quotes every text
    value, so that the rejects file (whose values are kept as text) showed every
    number in quotes. See :class:`_MinimalQuotingCsvWriter`.

    Example:
        >>> CsvSink("scores.csv").description
        'scores.csv'
    """

    def _open(self, tmp: Path, schema: pa.Schema) -> _MinimalQuotingCsvWriter:
        return _MinimalQuotingCsvWriter(tmp, schema)


class _MinimalQuotingCsvWriter:
    """Writes Arrow tables as CSV, quoting a value only if it holds a comma, quote or newline.

    A chunk goes through pyarrow's fast writer with quoting off; pyarrow refuses a
    chunk holding such a value, and that chunk alone is written through Python's
    :mod:`csv` with minimal quoting, its values first formatted by Arrow so that
    numbers, booleans and times read the same either way.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._file = path.open("wb")
        self._file.write(_csv_text([schema.names]))
        self._options = pacsv.WriteOptions(include_header=False, quoting_style="none")

    def write_table(self, table: pa.Table) -> None:
        # Into memory first: pyarrow may refuse the chunk after writing part of it.
        buffer = pa.BufferOutputStream()
        try:
            pacsv.write_csv(table, buffer, self._options)
            self._file.write(buffer.getvalue())
        except pa.ArrowInvalid:  # a value with a comma, quote or newline in it
            texts = [
                column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
                for column in table.columns
            ]
            self._file.write(_csv_text(zip(*(c.to_pylist() for c in texts), strict=True)))

    def close(self) -> None:
        self._file.close()


def _csv_text(rows: Any) -> bytes:
    """``rows`` as UTF-8 CSV lines with minimal quoting (Python's :mod:`csv`)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def check_output_folder(path: str | Path, *, what: str = "--output") -> None:
    """Fail at once, before any scoring, when ``path`` cannot be written: its folder
    is missing, is not a folder, or is not writable by this user."""
    parent = Path(path).absolute().parent
    if not parent.exists():
        raise InvalidInputError(
            f"{what} {str(path)!r}: cannot write it, folder {str(parent)!r} does not exist."
        )
    if not parent.is_dir():
        raise InvalidInputError(f"{what} {str(path)!r}: {str(parent)!r} is not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"{what} {str(path)!r}: cannot write in folder {str(parent)!r} (permission denied)."
        )


#: Output formats, by extension.
OUTPUT_FORMATS = ("parquet", "csv")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def format_of(path: str | Path, override: str | None = None) -> str:
    """``"parquet"`` or ``"csv"`` for an output: ``override`` if given, else the extension.

    Example:
        >>> format_of("out/scores.parquet")
        'parquet'
    """
    if override is not None:
        fmt = override.lower()
        if fmt not in OUTPUT_FORMATS:
            raise InvalidInputError(
                f"Unknown output format {override!r}; expected one of {OUTPUT_FORMATS}."
            )
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise InvalidInputError(
            f"Cannot tell the output format of {str(path)!r} from its extension "
            f"{suffix or '(none)'!r}; name it .parquet or .csv, or pass --format parquet|csv."
        )
    return _EXTENSIONS[suffix]


def open_sink(path: str | Path, *, fmt: str | None = None) -> ParquetSink | CsvSink:
    """A Parquet or CSV sink for ``path``, chosen by extension (or ``fmt``).

    Example:
        >>> type(open_sink("out.csv")).__name__
        'CsvSink'
    """
    kind = format_of(path, fmt)
    return ParquetSink(path) if kind == "parquet" else CsvSink(path)
