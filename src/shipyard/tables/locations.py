"""Where a table lives and in what format: one string for a file, an object or a database.

Every command that takes a table takes the same string:

- a file, its format from the extension: ``rows.csv``, ``rows.tsv``,
  ``rows.parquet`` / ``rows.pq``, ``rows.jsonl`` / ``rows.ndjson``,
  ``rows.json`` (JSON lines, or one array of records); the text formats also
  gzipped (``rows.csv.gz``, ``rows.jsonl.gz``);
- the same on S3-compatible storage: ``s3://bucket/rows.parquet``;
- a database table or query: a SQLAlchemy URL, ``#``, then the table name
  (``schema.table`` allowed) or a query starting with SELECT or WITH:
  ``sqlite:///shop.db#visits``,
  ``postgresql+psycopg://me@db/shop#SELECT * FROM visits WHERE day > '2024-05-01'``.

Nothing here does I/O: :func:`locate` only parses.

>>> locate("s3://bucket/rows.csv.gz").format, locate("s3://bucket/rows.csv.gz").compression
('csv', 'gzip')
>>> locate("sqlite:///shop.db#visits").table
'visits'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import TableError

#: File extension -> format.
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
#: Every format a table can have; ``sql`` is a database table or query.
FORMATS = ("csv", "tsv", "parquet", "jsonl", "json", "sql")
#: Formats stored as text, which may come gzipped.
TEXT_FORMATS = frozenset({"csv", "tsv", "jsonl", "json"})
#: Compression suffix -> the name fsspec and pandas know it by.
COMPRESSIONS = {".gz": "gzip"}
#: URL schemes that name a file on a filesystem rather than a database.
FILE_SCHEMES = frozenset({"file", "s3", "s3a"})

#: The end of every TableError message: what Shipyard reads.
ACCEPTED = (
    "Shipyard reads CSV (.csv, .tsv), Parquet (.parquet, .pq) and JSON lines "
    "(.jsonl, .ndjson, .json) files, the text ones also gzipped (.csv.gz), from a local "
    "path or s3://, and database tables as URL#TABLE or URL#SELECT ... "
    "(e.g. sqlite:///shop.db#visits)."
)

_QUERY = re.compile(r"\s*(select|with)\b", re.IGNORECASE)


def table_error(where: str, problem: str) -> TableError:
    """The one error for a table that cannot be read: where, what went wrong, what works."""
    problem = problem.strip()
    # A library's own message often ends its sentence already; "..." ends one too.
    end = " " if problem.endswith("...") else ". "
    if end == ". " and problem.endswith("."):
        problem = problem[:-1]
    return TableError(f"Cannot read {where}: {problem}{end}{ACCEPTED}")


@dataclass(frozen=True)
class TableLocation:
    """A parsed table location (see the module doc).

    ``path`` is the file path or URL for files, the database URL for ``sql``;
    ``table`` or ``query`` says what to read from the database.
    """

    path: str
    format: str
    compression: str | None = None
    table: str | None = None
    query: str | None = None

    @property
    def is_sql(self) -> bool:
        return self.format == "sql"

    @property
    def is_remote(self) -> bool:
        """True for objects on S3-compatible storage (they need the s3 extra)."""
        return self.path.lower().startswith(("s3://", "s3a://"))

    @property
    def is_local(self) -> bool:
        return not self.is_sql and not self.is_remote

    def describe(self) -> str:
        """How messages name it: the path, or the table / query and the database (no password)."""
        if not self.is_sql:
            return repr(self.path)
        where = _hide_password(self.path)
        return f"table {self.table!r} in {where}" if self.table else f"query in {where}"


def locate(
    source: str | Path,
    *,
    fmt: str | None = None,
    table: str | None = None,
    query: str | None = None,
) -> TableLocation:
    """Parse ``source`` into a :class:`TableLocation`.

    ``fmt`` overrides the format the extension implies; ``table`` or ``query``
    make ``source`` a database URL (instead of ``URL#...``).

    Example:
        >>> locate("rows.PQ").format
        'parquet'
        >>> locate("sqlite:///a.db#SELECT * FROM t").query
        'SELECT * FROM t'
    """
    text = str(source)
    if table is not None or query is not None:
        if (table is None) == (query is None):
            raise table_error(repr(text), "give a table name or a query, not both")
        return _sql(text, table=table, query=query)
    scheme, sep, _ = text.partition("://")
    if sep and not isinstance(source, Path) and scheme.lower() not in FILE_SCHEMES:
        url, hash_, what = text.partition("#")
        if not hash_ or not what.strip():
            raise table_error(
                _hide_password(url) if hash_ else repr(_hide_password(text)),
                "a database URL needs '#TABLE' or '#SELECT ...' after it",
            )
        if _QUERY.match(what):
            return _sql(url, table=None, query=what)
        return _sql(url, table=what.strip(), query=None)
    return _file(text, fmt)


def is_table_file(path: str | Path) -> bool:
    """True when ``path``'s name has an extension Shipyard reads as a table.

    Example:
        >>> is_table_file("a/b.csv.gz"), is_table_file("notes.txt")
        (True, False)
    """
    try:
        _file(str(path), None)
    except TableError:
        return False
    return True


def _file(path: str, fmt: str | None) -> TableLocation:
    name = path.rsplit("/", 1)[-1].lower()
    compression = None
    for suffix, kind in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression, name = kind, name[: -len(suffix)]
    if fmt is not None:
        kind = fmt.lower()
        if kind not in FORMATS or kind == "sql":
            raise table_error(repr(path), f"unknown format {fmt!r}")
    else:
        suffix = Path(name).suffix
        if suffix not in EXTENSIONS:
            raise table_error(
                repr(path), f"cannot tell its format from the extension {suffix or '(none)'!r}"
            )
        kind = EXTENSIONS[suffix]
    if compression is not None and kind not in TEXT_FORMATS:
        raise table_error(repr(path), f"a {kind} file is not read gzipped")
    return TableLocation(path=path, format=kind, compression=compression)


def _sql(url: str, *, table: str | None, query: str | None) -> TableLocation:
    if table is not None and not table.strip():
        raise table_error(_hide_password(url), "the table name is empty")
    return TableLocation(path=url, format="sql", table=table, query=query)


def _hide_password(url: str) -> str:
    # user:secret@host -> user:***@host, without parsing (SQLAlchemy is not imported here).
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)
