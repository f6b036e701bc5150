"""Where Arrow takes memory from while a command streams a large table.

Arrow's default pool (mimalloc) takes its memory in 2 MiB huge pages. A command
that decodes and encodes every row of a large table once, in a fresh process,
keeps faulting in fresh pages that the kernel zeroes whole: on 2 cores that was
0.7 to 3.7 s of system time for a 10M-row ``shipyard data snapshot`` (0.5 to
0.7 s with ``malloc``'s 4 KiB pages), and 0.4 to 0.5 s for a 1M-row ``shipyard
predict`` job (about 0.1 s with ``malloc``). A long-lived process (a server)
reuses its pages and is better left on the default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa


@contextmanager
def malloc_buffers() -> Iterator[None]:
    """Arrow allocates from the C library's ``malloc`` while the block runs (its default
    pool again afterwards; buffers already made keep the pool they came from)."""
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


__all__ = ["malloc_buffers"]
