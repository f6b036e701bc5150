"""The fast request path: validate once, look in the cache, batch, predict.

:class:`FastPath` is what :class:`~shipyard.serving.inference.Inference` calls
when batching or caching is on (the default). For one request it:

1. validates the payload against the signature once, in the event loop for a
   small payload (cheaper than a thread hop), in a thread for a large one;
2. answers from the prediction cache when the same version already scored the
   same validated input;
   (requests of more than :data:`~shipyard.serving.cache.MAX_CACHED_ROWS` rows
   skip the cache both ways);
3. otherwise queues it in the :class:`~shipyard.serving.batcher.Batcher`
   (requests that fit in a batch), or predicts it alone in a worker thread;
4. stores the answer in the cache.

A cache that fails (Redis down) is logged and bypassed: it must never turn a
request that the model can answer into an error.

Example:
    >>> fast = FastPath.from_options(ServeOptions(), metrics.registry, "iris")  # doctest: +SKIP
    >>> X, prediction = await fast.predict(served, {"sepal_length": 5.1, ...})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sized
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from shipyard.errors import StoreError
from shipyard.serving.batcher import Batcher, BatchMetrics, BatchSettings
from shipyard.serving.cache import (
    MAX_CACHED_ROWS,
    CacheMetrics,
    PredictionCache,
    build_cache,
    cache_key,
)
from shipyard.serving.runtime import Prediction, ServedModel

if TYPE_CHECKING:
    from shipyard.serving.options import ServeOptions

logger = logging.getLogger("shipyard.serving")

# Payloads up to this many rows are validated in the event loop: for a record or
# a handful of rows that costs less than the hop to a worker thread.
INLINE_ROWS = 64


def _row_count(data: Any) -> int | None:
    if isinstance(data, Mapping):
        return 1
    if isinstance(data, (list, tuple, pd.DataFrame, np.ndarray)) and isinstance(data, Sized):
        return len(data)
    return None


class FastPath:
    """Validation, cache and batcher in front of the model."""

    def __init__(
        self,
        *,
        batcher: Batcher | None,
        cache: PredictionCache | None,
        cache_metrics: CacheMetrics | None,
        request_timeout: float,
    ) -> None:
        self.batcher = batcher
        self.cache = cache
        self.cache_metrics = cache_metrics
        self.request_timeout = request_timeout

    @classmethod
    def from_options(
        cls, options: ServeOptions, registry: CollectorRegistry, model: str
    ) -> FastPath | None:
        """The path ``options`` ask for, or None when batching and caching are both off."""
        batcher = None
        if options.batching:
            settings = BatchSettings(
                max_batch_size=options.max_batch_size,
                max_wait_ms=options.max_wait_ms,
                max_queue_size=options.max_queue,
            )
            batcher = Batcher(settings, metrics=BatchMetrics(registry), model=model)
        cache = build_cache(
            options.cache,
            max_entries=options.cache_size,
            ttl_seconds=options.cache_ttl,
            max_bytes=options.cache_max_bytes,
        )
        if batcher is None and cache is None:
            return None
        metrics = CacheMetrics(registry) if cache is not None else None
        if metrics is not None and cache is not None:
            metrics.size(cache)
        return cls(
            batcher=batcher,
            cache=cache,
            cache_metrics=metrics,
            request_timeout=options.request_timeout,
        )

    async def predict(self, served: ServedModel, data: Any) -> tuple[Any, Prediction]:
        """Validated input and its predictions, for ``data`` on ``served``."""
        rows = _row_count(data)
        # Columns for a graph taking them by name (no DataFrame per request); the cache
        # keys validated frames and matrices, so with a cache the usual form is kept.
        prepare = served.model.prepare if self.cache is not None else served.model.prepare_request
        if rows is not None and rows <= INLINE_ROWS:
            X = prepare(data)
        else:
            X = await anyio.to_thread.run_sync(prepare, data, abandon_on_cancel=True)
        key = None
        if self.cache is not None and len(X) <= MAX_CACHED_ROWS:
            key = cache_key(served, X)
            hit = await self._cache_get(key)
            assert self.cache_metrics is not None
            self.cache_metrics.record(hit is not None)
            if hit is not None:
                return X, hit
        if self.batcher is not None and self.batcher.accepts(len(X)):
            deadline = self.batcher.clock.monotonic() + self.request_timeout
            result = await self.batcher.submit(served, X, deadline=deadline)
        else:
            result = await anyio.to_thread.run_sync(served.score_checked, X, abandon_on_cancel=True)
        if key is not None:
            await self._cache_put(key, result)
        return X, result

    async def _cache_get(self, key: str) -> Prediction | None:
        assert self.cache is not None
        try:
            return await self.cache.get(key)
        except StoreError as exc:
            logger.warning("Prediction cache lookup skipped: %s", exc)
            return None

    async def _cache_put(self, key: str, value: Prediction) -> None:
        assert self.cache is not None and self.cache_metrics is not None
        try:
            await self.cache.put(key, value)
        except StoreError as exc:
            logger.warning("Prediction not cached: %s", exc)
        self.cache_metrics.size(self.cache)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        if self.cache is not None:
            await self.cache.close()


__all__ = ["INLINE_ROWS", "FastPath"]
