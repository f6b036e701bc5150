"""Chunked sources for batch scoring: Parquet, CSV and SQL, read a bounded piece at a time.

Every source answers the same three questions without reading the data: which
columns it has, how many rows (when that is cheap to know), and then hands out
pandas DataFrames of at most ``chunk_size`` rows holding only the columns asked
for. Memory therefore depends on the chunk size, never on the file size.

- Parquet: :meth:`pyarrow.parquet.ParquetFile.iter_batches`, reading only the
  needed columns; the row count comes from the footer.
- CSV: :func:`pyarrow.csv.open_csv`, a streaming reader. Every column is read as
  text: CSV has no types, and inferring them from the first block would make
  the stream fail half-way on the first odd value. The validator parses numbers
  per chunk and names the rows that do not parse (``text_numbers = True``).
  Empty fields and Arrow's usual null markers (``NA``, ``N/A``, ``NULL``,
  ``nan``...) are missing values, as pandas reads them.
- SQL: a SQLAlchemy URL and a table name or a query, streamed with a
  server-side cursor (``stream_results``) so PostgreSQL sends rows as they are
  fetched instead of materialising the whole result in the client.

Example:
    >>> source = open_source("scores.parquet")                      # doctest: +SKIP
    >>> source.columns(), source.total_rows()                       # doctest: +SKIP
    (['sepal_length', ...], 5000000)
    >>> for chunk in source.chunks(["sepal_length"], 100_000): ...  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from shipyard.errors import InvalidInputError, NotFoundError, StoreError

#: File formats known by extension, in and out.
FORMATS = ("parquet", "csv")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
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


def format_of(path: str | Path, override: str | None = None) -> str:
    """``"parquet"`` or ``"csv"``: ``override`` if given, else from the file extension.

    Example:
        >>> format_of("out/scores.parquet")
        'parquet'
    """
    if override is not None:
        fmt = override.lower()
        if fmt not in FORMATS:
            raise InvalidInputError(f"Unknown format {override!r}; expected one of {FORMATS}.")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise InvalidInputError(
            f"Cannot tell the format of {str(path)!r} from its extension {suffix or '(none)'!r}; "
            "name it .parquet or .csv, or pass --format parquet|csv."
        )
    return _EXTENSIONS[suffix]


def open_source(path: str | Path, *, fmt: str | None = None) -> ChunkSource:
    """A Parquet or CSV source for ``path``, chosen by extension (or ``fmt``).

    Example:
        >>> open_source("rows.csv").text_numbers
        True
    """
    kind = format_of(path, fmt)
    return ParquetSource(path) if kind == "parquet" else CsvSource(path)


def _require_file(path: Path) -> None:
    if not path.exists():
        raise NotFoundError(f"Input file {str(path)!r} does not exist.")
    if not path.is_file():
        raise InvalidInputError(f"Input {str(path)!r} is not a file.")


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
    if chunk_size < 1:
        raise InvalidInputError(f"The chunk size must be at least 1, got {chunk_size}.")
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


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas, without a copy where the types allow it."""
    return table.to_pandas(split_blocks=True, self_destruct=False)


class ParquetSource:
    """A Parquet file read in row batches, only the columns asked for.

    Example:
        >>> ParquetSource("rows.parquet").description
        'rows.parquet'
    """

    text_numbers = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(path)

    def _file(self) -> pq.ParquetFile:
        _require_file(self.path)
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInputError(
                f"{self.description!r} is not a readable Parquet file ({exc})."
            ) from exc

    def columns(self) -> list[str]:
        return list(self._file().schema_arrow.names)

    def total_rows(self) -> int | None:
        return int(self._file().metadata.num_rows)

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        file = self._file()
        try:
            batches = file.iter_batches(batch_size=chunk_size, columns=list(columns))
            for table in rechunk(batches, chunk_size):
                yield to_frame(table)
        except pa.ArrowException as exc:
            raise InvalidInputError(f"Reading {self.description!r} failed: {exc}") from exc
        finally:
            file.close()


class CsvSource:
    """A CSV file with a header row, streamed block by block, every column as text.

    Example:
        >>> CsvSource("rows.csv").total_rows() is None  # unknown without a full scan
        True
    """

    text_numbers = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(path)

    def _open(self, columns: Sequence[str] | None = None) -> pacsv.CSVStreamingReader:
        _require_file(self.path)
        if self.path.stat().st_size == 0:
            raise InvalidInputError(
                f"Input file {self.description!r} is empty; a CSV input needs a header row "
                "naming the columns."
            )
        convert = pacsv.ConvertOptions(
            include_columns=list(columns) if columns is not None else None,
            column_types=dict.fromkeys(columns, pa.string()) if columns is not None else None,
            # An empty field is a missing value, not the empty string.
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        try:
            return pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                convert_options=convert,
            )
        except pa.ArrowInvalid as exc:
            raise InvalidInputError(
                f"{self.description!r} is not a readable CSV file: {exc}"
            ) from exc

    def columns(self) -> list[str]:
        reader = self._open()
        try:
            return list(reader.schema.names)
        finally:
            reader.close()

    def total_rows(self) -> int | None:
        return None

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        reader = self._open(columns)
        try:
            for table in rechunk(reader, chunk_size):
                yield to_frame(table)
        except pa.ArrowInvalid as exc:
            # Structural damage (a row with too many fields, bad quoting): not a row
            # we can reject by itself, because the parser lost track of the rows.
            raise InvalidInputError(f"{self.description!r} could not be parsed: {exc}") from exc
        finally:
            reader.close()


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
        self.url = url
        self.table = table
        self.query = query
        try:
            where = sa.make_url(url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError as exc:
            raise InvalidInputError(
                f"{url!r} is not a database URL; expected e.g. "
                "'sqlite:///rows.db' or 'postgresql+psycopg://user@host/db'."
            ) from exc
        self.description = f"table {table!r} in {where}" if table else f"query in {where}"

    def _connect(self) -> sa.Connection:
        # NullPool: the connection really closes when the block ends, so a finished
        # job leaves no idle session behind on the database server.
        try:
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise InvalidInputError(
                f"Cannot use the database URL for the {self.description}: {_reason(exc)}"
            ) from exc
        try:
            return engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"Cannot connect for the {self.description}: {_reason(exc)}") from exc

    def _table(self, conn: sa.Connection) -> sa.Table:
        assert self.table is not None
        schema, _, name = self.table.rpartition(".")
        try:
            return sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        except sa.exc.NoSuchTableError as exc:
            raise NotFoundError(
                f"There is no {self.description}; check the name (use schema.table for a "
                "table outside the default schema)."
            ) from exc

    def _statement(self, conn: sa.Connection, columns: Sequence[str] | None) -> sa.Executable:
        if self.table is not None:
            table = self._table(conn)
            if columns is None:
                return sa.select(table)
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
                raise InvalidInputError(f"The {self.description} failed: {_reason(exc)}") from exc

    def total_rows(self) -> int | None:
        if self.table is None:
            return None  # counting an arbitrary query could cost as much as running it
        with self._connect() as conn:
            table = self._table(conn)
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def chunks(self, columns: Sequence[str], chunk_size: int) -> Iterator[pd.DataFrame]:
        with self._connect() as conn:
            stmt = self._statement(conn, columns)
            try:
                result = conn.execution_options(
                    stream_results=True, max_row_buffer=chunk_size
                ).execute(stmt)
                keys = list(result.keys())
                for rows in result.partitions(chunk_size):
                    frame = pd.DataFrame.from_records(rows, columns=keys, coerce_float=True)
                    yield frame[list(columns)] if list(keys) != list(columns) else frame
            except sa.exc.SQLAlchemyError as exc:
                raise InvalidInputError(
                    f"Reading the {self.description} failed: {_reason(exc)}"
                ) from exc


def _reason(exc: BaseException) -> str:
    """The driver's own first line: SQLAlchemy appends the SQL and a link on more lines."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
