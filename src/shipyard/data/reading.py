"""Reading a table for a snapshot, started before the stores are open.

``shipyard data snapshot`` starts reading the table as soon as pandas and
pyarrow are loaded, then opens the store (a third of a second of imports and
database work on one core) while another thread decodes the first batches and
the pool hashes their rows. This module therefore imports nothing of the store.

>>> with start_snapshot("visits.parquet") as started:                   # doctest: +SKIP
...     versions.snapshot(started, name="visits")
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.ahead import ReadAhead
from shipyard.data.chunking import Piece, row_hashes
from shipyard.data.sources import DeltaSpec, is_delta_table, iter_pieces
from shipyard.errors import InvalidInputError

#: Threads that hash rows and encode, hash and store chunks: one per core (at least
#: two, so storing one chunk's bytes overlaps encoding the next).
WORKERS = max(2, os.cpu_count() or 1)
#: Batches read, and their rows hashed, ahead of the chunker: more than a steady
#: pipeline needs, so what is read while the command opens the store waits here.
_READ_AHEAD = 6


class StartedSnapshot:
    """A table being read for a snapshot: started by :func:`start_snapshot` before the
    stores are open, stored by :meth:`DataVersions.snapshot`. Close it when done (or
    use ``with``); closing stops the reading if the snapshot never took place.

    Rows are read on one thread (file decoding and SQL fetches release the GIL) and
    hashed on ``pool`` as soon as read, up to ``_READ_AHEAD`` batches ahead.
    """

    def __init__(self, pieces: Iterator[Piece], described: str | None) -> None:
        self.described = described
        self._taken = False
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="shipyard-data")

        def hashed() -> Iterator[tuple[Piece, Future[np.ndarray]]]:
            try:
                for piece in pieces:
                    yield piece, self.pool.submit(row_hashes, piece.frame)
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()

        self.pieces = ReadAhead(hashed(), depth=_READ_AHEAD)

    def take(self) -> ReadAhead[tuple[Piece, Future[np.ndarray]]]:
        """The pieces and their row hashes, in order; for one snapshot only."""
        if self._taken:
            raise InvalidInputError("This table was already snapshotted: start it again.")
        self._taken = True
        return self.pieces

    def close(self) -> None:
        self.pieces.close()
        self.pool.shutdown(cancel_futures=True)

    def __enter__(self) -> StartedSnapshot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def start_snapshot(
    source: str | Path | pd.DataFrame,
    *,
    delta: bool = False,
    delta_version: int | None = None,
    as_of: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> StartedSnapshot | DeltaSpec:
    """Start reading ``source`` for a snapshot (a Delta Lake table is only pinned, so
    there is nothing to read: its :class:`DeltaSpec`). See :meth:`DataVersions.snapshot`.
    """
    if isinstance(source, pd.DataFrame):
        return StartedSnapshot(iter([Piece(source)]), None)
    text = str(source)
    if delta or delta_version is not None or as_of is not None or is_delta_table(text):
        return DeltaSpec(text, delta_version, as_of)
    return StartedSnapshot(iter_pieces(text, storage_options=storage_options), text)


__all__ = ["WORKERS", "StartedSnapshot", "start_snapshot"]
