"""Table I/O for every command and stage: one location string, one error, any format.

A table is a CSV / TSV, Parquet or JSON lines file (text formats also
gzipped), local or on ``s3://``, or a database table or query given as
``URL#TABLE`` / ``URL#SELECT ...``. :func:`read_table` reads one whole;
:func:`open_source` hands out bounded chunks (batch scoring). Whatever goes
wrong, the error is :class:`~shipyard.errors.TableError`, naming the table and
listing the formats accepted. Which CSV field values mean missing is one rule,
:data:`MISSING_WORDS` (pandas' default words), used by every CSV reader.

This is a base module: it imports nothing from the stages.

>>> frame = read_table("current.csv.gz")                          # doctest: +SKIP
>>> for chunk in open_source("big.parquet").chunks(["x"], 10_000): ...  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.lazy import lazy_exports

# public name -> module that defines it. Imported on first use (PEP 562): a command
# that only needs ``locations`` or ``files`` (a data snapshot of a Parquet file)
# does not load pandas through ``chunks`` and ``frames``.
_EXPORTS = {
    "ACCEPTED": "shipyard.tables.locations",
    "FORMATS": "shipyard.tables.locations",
    "MISSING_WORDS": "shipyard.tables.missing",
    "ChunkSource": "shipyard.tables.chunks",
    "CsvSource": "shipyard.tables.chunks",
    "JsonArraySource": "shipyard.tables.chunks",
    "JsonLinesSource": "shipyard.tables.chunks",
    "ParquetSource": "shipyard.tables.chunks",
    "SqlSource": "shipyard.tables.chunks",
    "TableError": "shipyard.errors",
    "TableLocation": "shipyard.tables.locations",
    "locate": "shipyard.tables.locations",
    "open_source": "shipyard.tables.chunks",
    "read_table": "shipyard.tables.frames",
    "rechunk": "shipyard.tables.chunks",
    "storage_options": "shipyard.tables.files",
}

__all__ = [
    "ACCEPTED",
    "FORMATS",
    "MISSING_WORDS",
    "ChunkSource",
    "CsvSource",
    "JsonArraySource",
    "JsonLinesSource",
    "ParquetSource",
    "SqlSource",
    "TableError",
    "TableLocation",
    "locate",
    "open_source",
    "read_table",
    "rechunk",
    "storage_options",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from shipyard.errors import TableError
    from shipyard.tables.chunks import (
        ChunkSource,
        CsvSource,
        JsonArraySource,
        JsonLinesSource,
        ParquetSource,
        SqlSource,
        open_source,
        rechunk,
    )
    from shipyard.tables.files import storage_options
    from shipyard.tables.frames import read_table
    from shipyard.tables.locations import ACCEPTED, FORMATS, TableLocation, locate
    from shipyard.tables.missing import MISSING_WORDS
