"""Batch scoring: large files and tables, streamed in chunks through a registered model.

The sources are :mod:`shipyard.tables`' chunked readers (re-exported here).

Example:
    >>> from shipyard.batch import score_file
    >>> summary = score_file(model, "rows.parquet", "scores.parquet")  # doctest: +SKIP
"""

from shipyard.batch.scorer import (
    DEFAULT_CHUNK_SIZE,
    BatchSummary,
    ChunkResult,
    Reject,
    score_file,
)
from shipyard.batch.writers import ChunkSink, CsvSink, ParquetSink, open_sink
from shipyard.tables import ChunkSource, CsvSource, ParquetSource, SqlSource, open_source

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BatchSummary",
    "ChunkResult",
    "ChunkSink",
    "ChunkSource",
    "CsvSink",
    "CsvSource",
    "ParquetSink",
    "ParquetSource",
    "Reject",
    "SqlSource",
    "open_sink",
    "open_source",
    "score_file",
]
