"""A bounded thread pool for per-column work.

numpy sorts and scipy's tests release the GIL, so threads give real
parallelism without copying frames into worker processes. Tasks receive a
column *name* and load that column themselves, so at most ``n_jobs`` columns
are materialised at any moment.

    >>> parallel_map(lambda x: x * 2, [1, 2, 3], n_jobs=2)
    [2, 4, 6]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def effective_jobs(n_jobs: int | None, n_tasks: int) -> int:
    """scikit-learn's convention: ``None`` or ``-1`` means every core."""
    if n_jobs is None or n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    return max(1, min(n_jobs, n_tasks))


def parallel_map(func: Callable[[T], R], items: Iterable[T], n_jobs: int | None) -> list[R]:
    """``[func(x) for x in items]`` on up to ``n_jobs`` threads, order kept."""
    items = list(items)
    jobs = effective_jobs(n_jobs, len(items))
    if jobs == 1:
        return [func(x) for x in items]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="shipyard-drift") as pool:
        return list(pool.map(func, items))
