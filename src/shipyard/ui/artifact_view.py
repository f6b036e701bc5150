"""What a run page shows of each artifact: an image inline, a table's first rows, text.

The bytes come from the tracking artifacts API
(:func:`shipyard.tracking.artifacts.read_artifact`, checksum verified); this
module only decides how much of them a page shows. Everything is bounded: a
table shows its first :data:`TABLE_ROWS` rows and :data:`TABLE_COLUMNS`
columns, text its first :data:`TEXT_BYTES` bytes, and an artifact larger than
:data:`PREVIEW_BYTES` is not read for a preview at all (its download link
stays). The page's template escapes every cell and every line of text.

>>> view = preview_of(RunArtifact("a.txt", "d", 2, "text", now), b"hi")   # doctest: +SKIP
>>> view.text
'hi'
"""

from __future__ import annotations

import contextlib
import io
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from shipyard.store import records
from shipyard.tables.missing import pandas_csv_options

__all__ = [
    "PREVIEW_BYTES",
    "TABLE_COLUMNS",
    "TABLE_ROWS",
    "TEXT_BYTES",
    "ArtifactView",
    "content_type",
    "preview_of",
]

#: Artifacts larger than this are listed with a download link but not previewed.
PREVIEW_BYTES = 5 * 1024 * 1024
TABLE_ROWS = 20
TABLE_COLUMNS = 20
TEXT_BYTES = 64 * 1024
_IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
_TABLES = {".parquet", ".csv", ".jsonl"}
_TEXT = {".txt", ".md", ".log", ".html", ".py", ".rst", ".json", ".yaml", ".yml", ".csv"}
# Types the browser might run or render as a page are served as plain text.
_AS_TEXT = {".html", ".htm", ".xhtml", ".js", ".mjs", ".xml"}


@dataclass(frozen=True)
class ArtifactView:
    """One artifact as the run page shows it: ``show`` is image, table, text or none."""

    artifact: records.RunArtifact
    show: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int | None = None
    text: str = ""
    truncated: bool = False
    note: str = ""


def content_type(path: str) -> str:
    """The Content-Type a download of ``path`` is served with."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in _AS_TEXT:
        return "text/plain; charset=utf-8"
    if suffix == ".parquet":
        return "application/vnd.apache.parquet"
    if suffix in (".jsonl", ".yaml", ".yml", ".md", ".log", ".rst", ".py"):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(path)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def preview_of(artifact: records.RunArtifact, data: bytes | None) -> ArtifactView:
    """How ``artifact`` is shown; ``data`` None means it was too large to read."""
    suffix = PurePosixPath(artifact.path).suffix.lower()
    if suffix in _IMAGES:
        return ArtifactView(artifact, "image")
    if data is None:
        return ArtifactView(
            artifact,
            "none",
            note=f"{artifact.size:,} bytes: larger than the preview limit, download it to see it.",
        )
    if suffix in _TABLES or artifact.kind == "table":
        try:
            return _table(artifact, data, suffix)
        except Exception as exc:  # a file that does not parse is shown as such, not a 500
            return ArtifactView(
                artifact, "none", note=f"Cannot read it as a table: {str(exc)[:200]}"
            )
    if suffix in _TEXT or artifact.kind in ("text", "json"):
        return _text(artifact, data, suffix)
    return ArtifactView(artifact, "none", note="No preview for this kind of file.")


def _table(artifact: records.RunArtifact, data: bytes, suffix: str) -> ArtifactView:
    import pandas as pd

    total: int | None = None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        reader = pq.ParquetFile(io.BytesIO(data))
        total = reader.metadata.num_rows
        # Only the first batch is decoded: a million-row table costs one small read.
        batch = next(reader.iter_batches(batch_size=TABLE_ROWS), None)
        first = batch if batch is not None else reader.schema_arrow.empty_table()
        frame = first.to_pandas()
    elif suffix == ".csv":
        frame = pd.read_csv(io.BytesIO(data), nrows=TABLE_ROWS, **pandas_csv_options())
    else:
        frame = pd.read_json(io.BytesIO(data), lines=True, nrows=TABLE_ROWS)
    frame = frame.head(TABLE_ROWS)
    columns = [str(c) for c in frame.columns[:TABLE_COLUMNS]]
    rows = [
        ["" if pd.isna(v) else str(v) for v in row]
        for row in frame.iloc[:, :TABLE_COLUMNS].itertuples(index=False)
    ]
    note = ""
    if len(frame.columns) > TABLE_COLUMNS:
        note = f"First {TABLE_COLUMNS} of {len(frame.columns)} columns."
    return ArtifactView(artifact, "table", columns=columns, rows=rows, total_rows=total, note=note)


def _text(artifact: records.RunArtifact, data: bytes, suffix: str) -> ArtifactView:
    head = data[:TEXT_BYTES]
    text = head.decode("utf-8", errors="replace")
    if suffix == ".json" and len(data) <= TEXT_BYTES:
        with contextlib.suppress(ValueError):  # not valid JSON: shown as it is
            text = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    return ArtifactView(artifact, "text", text=text, truncated=len(data) > TEXT_BYTES)
