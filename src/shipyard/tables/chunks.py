"""Chunked table sources: any table location, read a bounded piece at a time.

Every source answers the same three questions without reading the data: which
columns it has, how many rows (when that is cheap to know), and then hands out
pandas DataFrames of at most ``chunk_size`` rows holding only the columns asked
for. Memory therefore depends on the chunk size, never on the table size.

- Parquet: :meth:`pyarrow.parquet.ParquetFile.iter_batches`, reading only the
  needed columns; the row count comes from the footer.
- CSV / TSV (gzipped too): :func:`pyarrow.csv.open_csv`, a streaming reader.
  Every column is read as text: CSV has no types, and inferring them from the
  first block would make the stream fail half-way on the first odd value. The
  batch validator parses numbers per chunk and names the rows that do not
  parse (``text_numbers = True``). Empty fields and Arrow's usual null markers
  (``NA``, ``N/A``, ``NULL``, ``nan``...) are missing values, as pandas reads them.
- JSON lines: pandas' line reader with ``chunksize``; a ``.json`` array of
  records has no streaming form and is read whole, then sliced.
- SQL: a SQLAlchemy URL and a table name or a query, streamed with a
  server-side cursor (``stream_results``) so PostgreSQL sends rows as they are
  fetched instead of materialising the whole result in the client.

Files may be local or on ``s3://`` (through fsspec, with the s3 extra).

Example:
    >>> source = open_source("scores.parquet")                      # doctest: +SKIP
    >>> source.columns(), source.total_rows()                       # doctest: +SKIP
    (['sepal_length', ...], 5000000)
    >>> for chunk in source.chunks(["sepal_length"], 100_000): ...  # doctest: +SKIP
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from shipyard.errors import InvalidInputError
from shipyard.tables.files import READ_ERRORS, open_file
from shipyard.tables.locations import TableLocation, locate, table_error
from shipyard.tables.missing import arrow_null_options

# CSV blocks are bytes, not rows: 4 MiB parses fast and keeps the reader's own buffer small.
_CSV_BLOCK_BYTES = 4 << 20


@runtime_checkable
class ChunkSource(Protocol):
    """Where batch rows come from. Constructors do no I/O; each method opens what it needs."""

    #: Shown in messages: the file path, or the table and database.
    description: str
    #: True when values arrive as text (CSV), so numbers must be parsed from strings.
    text_numbers: bool

    def columns(self) -> list[str]:
        """The column names, read from the header / schema only."""
        ...

    def total_rows(self) -> int | None:
        """The number of rows if known without reading the data, else None."""
        ...

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        """DataFrames of at most ``chunk_size`` rows with just ``columns``, in input order."""
        ...


def open_source(
    source: str | Path | TableLocation,
    *,
    fmt: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ChunkSource:
    """The chunked source for a table location (see :mod:`shipyard.tables.locations`).

    Example:
        >>> open_source("rows.csv").text_numbers
        True
        >>> open_source("sqlite:///shop.db#visits").description
        "table 'visits' in sqlite:///shop.db"
    """
    where = source if isinstance(source, TableLocation) else locate(source, fmt=fmt)
    options = dict(storage_options or {})
    if where.is_sql:
        return SqlSource(where.path, table=where.table, query=where.query)
    if where.format == "parquet":
        return ParquetSource(where, storage_options=options)
    if where.format in ("csv", "tsv"):
        return CsvSource(where, storage_options=options)
    if where.format == "jsonl":
        return JsonLinesSource(where, storage_options=options)
    return JsonArraySource(where, storage_options=options)


def _file_location(source: str | Path | TableLocation, fmt: str) -> TableLocation:
    if isinstance(source, TableLocation):
        return source
    where = locate(source)
    return where if where.format == fmt else TableLocation(str(source), fmt, where.compression)


def rechunk(tables: Iterable[pa.Table | pa.RecordBatch], chunk_size: int) -> Iterator[pa.Table]:
    """Regroup a stream of Arrow batches into tables of exactly ``chunk_size`` rows.

    The last table holds the remainder. Readers hand out batches sized by bytes
    (CSV blocks) or row groups (Parquet); fixed-size chunks keep progress and
    memory predictable.

    Example:
        >>> batches = [pa.table({"x": list(range(n))}) for n in (3, 4, 2)]
        >>> [t.num_rows for t in rechunk(batches, 4)]
        [4, 4, 1]
    """
    _check_chunk_size(chunk_size)
    pending: list[pa.Table] = []
    held = 0
    for item in tables:
        table = pa.Table.from_batches([item]) if isinstance(item, pa.RecordBatch) else item
        if table.num_rows == 0:
            continue
        pending.append(table)
        held += table.num_rows
        while held >= chunk_size:
            merged = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            yield merged.slice(0, chunk_size)
            rest = merged.slice(chunk_size)
            pending = [rest] if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise InvalidInputError(f"The chunk size must be at least 1, got {chunk_size}.")


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, without a copy where the types allow it."""
    return table.to_pandas(split_blocks=True, self_destruct=False)


class _FileSource:
    """What the file sources share: a location, fsspec options, a guarded open."""

    text_numbers = False
    _format = "csv"

    def __init__(
        self,
        source: str | Path | TableLocation,
        *,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.location = _file_location(source, self._format)
        self.storage_options = dict(storage_options or {})
        self.description = self.location.path

    @contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        with open_file(self.location, self.storage_options) as handle:
            yield handle


class ParquetSource(_FileSource):
    """A Parquet file read in row batches, only the columns asked for.

    Example:
        >>> ParquetSource("rows.parquet").description
        'rows.parquet'
    """

    _format = "parquet"

    def __init__(
        self,
        source: str | Path | TableLocation,
        *,
        storage_options: dict[str, Any] | None = None,
        row_groups: Sequence[int] | None = None,
    ) -> None:
        super().__init__(source, storage_options=storage_options)
        # A piece of the file (a partition of a parallel job): only these row groups.
        self.row_groups = None if row_groups is None else list(row_groups)

    @contextmanager
    def _file(self) -> Iterator[pq.ParquetFile]:
        with self._open() as handle:
            try:
                file = pq.ParquetFile(handle)
            except READ_ERRORS as exc:
                raise table_error(
                    self.location.describe(), f"not a readable Parquet file ({exc})"
                ) from exc
            try:
                yield file
            finally:
                file.close()

    def columns(self) -> list[str]:
        with self._file() as file:
            return list(file.schema_arrow.names)

    def total_rows(self) -> int | None:
        with self._file() as file:
            if self.row_groups is not None:
                meta = file.metadata
                return sum(int(meta.row_group(i).num_rows) for i in self.row_groups)
            return int(file.metadata.num_rows)

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        with self._file() as file:
            try:
                batches = file.iter_batches(
                    batch_size=chunk_size, columns=list(columns), row_groups=self.row_groups
                )
                for table in rechunk(batches, chunk_size):
                    yield to_frame(table)
            except pa.ArrowException as exc:
                raise table_error(self.location.describe(), f"reading failed: {exc}") from exc


class CsvSource(_FileSource):
    """A CSV (or TSV) file with a header row, streamed block by block, every column as text.

    Example:
        >>> CsvSource("rows.csv").total_rows() is None  # unknown without a full scan
        True
    """

    text_numbers = True

    def _reader(
        self, handle: IO[bytes], columns: Sequence[str] | None = None
    ) -> pacsv.CSVStreamingReader:
        convert = pacsv.ConvertOptions(
            include_columns=list(columns) if columns is not None else None,
            column_types=dict.fromkeys(columns, pa.string()) if columns is not None else None,
            # Missing values: the empty field and pandas' words (NA, null, None ...),
            # quoted or not: the one rule every CSV reader in Shipyard follows.
            **arrow_null_options(),
        )
        delimiter = "\t" if self.location.format == "tsv" else ","
        try:
            return pacsv.open_csv(
                handle,
                read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=convert,
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise table_error(
                    self.location.describe(),
                    "the file is empty; a CSV input needs a header row naming the columns",
                ) from exc
            raise table_error(self.location.describe(), f"not a readable CSV file: {exc}") from exc

    def columns(self) -> list[str]:
        with self._open() as handle:
            reader = self._reader(handle)
            try:
                return list(reader.schema.names)
            finally:
                reader.close()

    def total_rows(self) -> int | None:
        return None

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        with self._open() as handle:
            reader = self._reader(handle, columns)
            try:
                for table in rechunk(reader, chunk_size):
                    yield to_frame(table)
            except pa.ArrowInvalid as exc:
                # Structural damage (a row with too many fields, bad quoting): not a row
                # we can reject by itself, because the parser lost track of the rows.
                raise table_error(
                    self.location.describe(), f"it could not be parsed: {exc}"
                ) from exc
            finally:
                reader.close()


class JsonLinesSource(_FileSource):
    """A JSON lines file, one object per line, read ``chunk_size`` lines at a time.

    The columns are the keys of the first object; a later object lacking one
    gives a missing value there. JSON keeps its types, so numbers arrive as numbers.

    Example:
        >>> JsonLinesSource("rows.jsonl").text_numbers
        False
    """

    _format = "jsonl"

    def _read(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        _check_chunk_size(chunk_size)
        with self._open() as handle:
            try:
                # dtype=False: keep JSON's own types ("007" stays text, 1.0 a number).
                with pd.read_json(handle, lines=True, chunksize=chunk_size, dtype=False) as it:
                    yield from it
            except READ_ERRORS as exc:
                raise table_error(
                    self.location.describe(), f"not a readable JSON lines file: {exc}"
                ) from exc

    def columns(self) -> list[str]:
        for chunk in self._read(1):
            return [str(c) for c in chunk.columns]
        raise table_error(self.location.describe(), "the file holds no rows")

    def total_rows(self) -> int | None:
        return None

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        for chunk in self._read(chunk_size):
            yield chunk.reindex(columns=list(columns)).reset_index(drop=True)


class JsonArraySource(_FileSource):
    """A ``.json`` file: JSON lines are streamed; one array of records is read whole.

    Example:
        >>> JsonArraySource("rows.json").total_rows() is None
        True
    """

    _format = "json"

    def _frame(self) -> pd.DataFrame:
        with self._open() as handle:
            try:
                return parse_json(handle.read(), kind=self.location.format)
            except READ_ERRORS as exc:
                raise table_error(
                    self.location.describe(), f"not a readable JSON file: {exc}"
                ) from exc

    def columns(self) -> list[str]:
        return [str(c) for c in self._frame().columns]

    def total_rows(self) -> int | None:
        return None

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        _check_chunk_size(chunk_size)
        frame = self._frame().reindex(columns=list(columns))
        for start in range(0, len(frame), chunk_size):
            yield frame.iloc[start : start + chunk_size].reset_index(drop=True)


def parse_json(data: bytes, *, kind: str, dtype: dict[str, Any] | None = None) -> pd.DataFrame:
    """A JSON lines (``kind="jsonl"``) or ``.json`` file's bytes as a frame.

    A ``.json`` file holding an array of records is read as such, else as one
    object per line. Raises ValueError on damaged or empty input.

    Example:
        >>> parse_json(b'[{"x": 1}, {"x": 2}]', kind="json")["x"].tolist()
        [1, 2]
    """
    if not data.strip():
        # pandas reads an empty JSON lines file as a table of nothing; say so instead.
        raise ValueError("the file is empty")
    lines = kind == "jsonl" or not data.lstrip().startswith(b"[")
    return pd.read_json(io.BytesIO(data), lines=lines, dtype=dtype if dtype else True)


class SqlSource:
    """Rows of a table, or of a query, through a SQLAlchemy database URL.

    ``table`` may be ``schema.table``. Rows are streamed with a server-side
    cursor where the driver has one (PostgreSQL); SQLite steps through its own
    cursor, which is already lazy.

    Example:
        >>> SqlSource("sqlite:///rows.db", table="iris").description
        "table 'iris' in sqlite:///rows.db"
    """

    text_numbers = False

    def __init__(self, url: str, *, table: str | None = None, query: str | None = None) -> None:
        if (table is None) == (query is None):
            raise InvalidInputError("Give a SQL source either a table name or a query, not both.")
        self.location = locate(url, table=table, query=query)
        self.url = url
        self.table = table
        self.query = query
        try:
            sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise table_error(
                repr(url),
                "not a database URL; expected e.g. 'sqlite:///rows.db' or "
                "'postgresql+psycopg://user@host/db'",
            ) from exc
        self.description = self.location.describe()

    def _connect(self) -> sa.Connection:
        self._check_sqlite_file()
        # NullPool: the connection really closes when the block ends, so a finished
        # job leaves no idle session behind on the database server.
        try:
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise table_error(
                f"the {self.description}", f"cannot use its database URL: {_reason(exc)}"
            ) from exc
        try:
            return engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise table_error(f"the {self.description}", f"cannot connect: {_reason(exc)}") from exc

    def _check_sqlite_file(self) -> None:
        """A SQLite URL must name a file that exists: SQLite creates a missing one on
        connect, so a mistyped path left an empty database behind and the error then
        blamed the table ("there is no table ..."), not the path."""
        url = sa.make_url(self.url)
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            return
        path = database
        if database.startswith("file:"):  # a SQLite URI (?uri=true): file:PATH?mode=...
            path, _, options = database[len("file:") :].partition("?")
            if "mode=memory" in options or not path:
                return
            path = unquote(path)
        if not Path(path).is_file():
            problem = "is a folder" if Path(path).is_dir() else "does not exist"
            raise table_error(
                f"the {self.description}",
                f"the SQLite database file {path} {problem}; check the path "
                "(sqlite:///relative/path.db, or sqlite:////absolute/path.db)",
            )

    def _table(self, conn: sa.Connection) -> sa.Table:
        assert self.table is not None
        schema, _, name = self.table.rpartition(".")
        try:
            return sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        except sa.exc.NoSuchTableError as exc:
            raise table_error(
                f"the {self.description}",
                f"there is no {self.description}; check the name (use schema.table for a "
                "table outside the default schema)",
            ) from exc

    def _statement(self, conn: sa.Connection, columns: Sequence[str] | None) -> sa.Executable:
        if self.table is not None:
            table = self._table(conn)
            if columns is None:
                return sa.select(table)
            missing = [name for name in columns if name not in table.c]
            if missing:
                raise table_error(f"the {self.description}", f"it has no column(s) {missing}")
            return sa.select(*(table.c[name] for name in columns))
        return sa.text(self._query())

    def _query(self) -> str:
        assert self.query is not None
        return self.query.strip().rstrip(";")

    def columns(self) -> list[str]:
        with self._connect() as conn:
            if self.table is not None:
                return [c.name for c in self._table(conn).columns]
            # Wrapping the query yields its columns without fetching a row.
            probe = sa.text(f"SELECT * FROM ({self._query()}) AS shipyard_probe WHERE 1 = 0")
            try:
                return list(conn.execute(probe).keys())
            except sa.exc.SQLAlchemyError as exc:
                raise table_error(
                    f"the {self.description}", f"the query failed: {_reason(exc)}"
                ) from exc

    def total_rows(self) -> int | None:
        if self.table is None:
            return None  # counting an arbitrary query could cost as much as running it
        with self._connect() as conn:
            table = self._table(conn)
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        _check_chunk_size(chunk_size)
        with self._connect() as conn:
            stmt = self._statement(conn, columns)
            try:
                result = conn.execution_options(
                    stream_results=True, max_row_buffer=chunk_size
                ).execute(stmt)
                keys = list(result.keys())
                twice = sorted({k for k in keys if keys.count(k) > 1})
                if twice:
                    raise table_error(
                        f"the {self.description}",
                        f"it returns column name(s) {twice} more than once; give each "
                        "column its own name (SELECT a, b AS other_name ...)",
                    )
                for rows in result.partitions(chunk_size):
                    frame = pd.DataFrame.from_records(rows, columns=keys, coerce_float=True)
                    yield frame[list(columns)] if list(keys) != list(columns) else frame
            except sa.exc.SQLAlchemyError as exc:
                raise table_error(
                    f"the {self.description}", f"reading failed: {_reason(exc)}"
                ) from exc


def _reason(exc: BaseException) -> str:
    """The driver's own first line: SQLAlchemy appends the SQL and a link on more lines."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "ChunkSource",
    "CsvSource",
    "JsonArraySource",
    "JsonLinesSource",
    "ParquetSource",
    "SqlSource",
    "open_source",
    "parse_json",
    "rechunk",
    "to_frame",
]
