"""Prediction cache: answers already computed for the same version and the same input.

Keys are built from the served version's identity (model name, version number
and manifest digest) and the *validated* input (the matrix or frame the model
would receive, so ``{"a": 1}`` and ``{"a": 1.0}`` are one entry). A key from
one version can never match another version's entry, so an answer never
outlives a hot swap.

Two stores behind one small Protocol:

- :class:`MemoryCache` (default): an LRU in the process (each worker has its
  own), bounded by the bytes its answers hold (``--cache-max-bytes``, by
  default :func:`default_cache_bytes`: 5 % of the machine's memory, at most
  256 MiB), by entry count and by TTL;
- :class:`RedisCache`: shared by every worker and replica pointing at the same
  Redis (``redis://127.0.0.1:6379/0``), entries expire by TTL on the server.

Requests of more than :data:`MAX_CACHED_ROWS` rows skip the cache (neither
looked up nor stored): a large batch is rarely sent twice, and one would
crowd out thousands of small answers. An answer bigger than an eighth of the
memory cache is not stored either.

Hits and misses are counted (``shipyard_prediction_cache_hits_total``,
``..._misses_total``) and their ratio exported as
``shipyard_prediction_cache_hit_ratio``; the memory cache's size and bound as
``shipyard_prediction_cache_bytes`` and ``..._max_bytes``.

Example:
    >>> cache = MemoryCache(max_bytes=1_000_000, ttl_seconds=60)
    >>> from shipyard.serving.runtime import Prediction
    >>> import numpy as np
    >>> cache.put_sync("k", Prediction(np.array([1]), None))
    >>> cache.get_sync("k").labels.tolist()
    [1]
"""

from __future__ import annotations

import collections
import hashlib
import sys
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd
import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import ConfigError, StoreError
from shipyard.serving.runtime import Prediction, ServedModel

DEFAULT_PREFIX = "shipyard:predcache:"
#: Requests with more rows than this are never cached (see the module doc).
MAX_CACHED_ROWS = 1_000
#: What the bookkeeping of one entry costs beyond its arrays (dict slot, tuple,
#: Prediction object, array headers), roughly.
_ENTRY_OVERHEAD = 400


def default_cache_bytes() -> int:
    """The memory cache's default bound: 5 % of the machine's memory, at most 256 MiB."""
    return min(256 * 2**20, psutil.virtual_memory().total // 20)


def _array_bytes(array: np.ndarray) -> int:
    if array.dtype != object or not array.size:
        return int(array.nbytes)
    # Objects (strings, mostly) beyond their pointers, estimated from a sample: the
    # distinct objects in it, scaled by how many distinct ones the whole array would
    # hold at that rate. A classifier's labels are its few class objects, shared.
    step = max(1, array.size // 64)
    sample = array.ravel()[::step]
    distinct = {id(v): v for v in sample}.values()
    per_object = sum(map(sys.getsizeof, distinct)) / len(distinct)
    return int(array.nbytes + per_object * len(distinct) / len(sample) * array.size)


def prediction_bytes(value: Prediction) -> int:
    """About how much memory a cached answer holds."""
    size = _array_bytes(np.asarray(value.labels))
    if value.probabilities is not None:
        size += _array_bytes(np.asarray(value.probabilities))
    return size + _ENTRY_OVERHEAD


def input_digest(X: pd.DataFrame | np.ndarray) -> str:
    """A digest of validated input: same values, same dtypes, same shape -> same digest."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(X, np.ndarray):
        h.update(f"a|{X.dtype.str}|{X.shape}".encode())
        h.update(np.ascontiguousarray(X).tobytes())
    else:
        h.update(f"f|{list(X.columns)}|{[str(d) for d in X.dtypes]}|{len(X)}".encode())
        h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    return h.hexdigest()


def cache_key(served: ServedModel, X: pd.DataFrame | np.ndarray) -> str:
    """``name:version:manifest-digest:input-digest``: version-bound by construction."""
    record = served.record
    return f"{record.model}:{record.version}:{record.manifest_digest[:16]}:{input_digest(X)}"


class PredictionCache(Protocol):
    """Where cached predictions live."""

    async def get(self, key: str) -> Prediction | None: ...

    async def put(self, key: str, value: Prediction) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """An in-process LRU holding at most ``max_bytes`` of answers and ``max_entries``
    entries, each kept ``ttl_seconds`` at most.

    ``max_bytes`` defaults to :func:`default_cache_bytes`; an answer bigger than
    an eighth of it is not stored.
    """

    def __init__(
        self,
        *,
        max_bytes: int | None = None,
        max_entries: int = 10_000,
        ttl_seconds: float = 300.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        max_bytes = default_cache_bytes() if max_bytes is None else max_bytes
        if max_bytes < 1:
            raise ConfigError(f"cache max_bytes must be at least 1, got {max_bytes}.")
        if max_entries < 1:
            raise ConfigError(f"cache max_entries must be at least 1, got {max_entries}.")
        if ttl_seconds <= 0:
            raise ConfigError(f"cache ttl_seconds must be > 0, got {ttl_seconds}.")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, int, Prediction]] = (
            collections.OrderedDict()
        )
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_sync(self, key: str) -> Prediction | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, _, value = entry
        if expires <= self._clock.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def put_sync(self, key: str, value: Prediction) -> None:
        size = prediction_bytes(value) + len(key)
        if size > self.max_bytes // 8:
            return
        self._drop(key)
        self._entries[key] = (self._clock.monotonic() + self.ttl_seconds, size, value)
        self.bytes += size
        while self.bytes > self.max_bytes or len(self._entries) > self.max_entries:
            _, (_, evicted, _) = self._entries.popitem(last=False)
            self.bytes -= evicted

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]

    async def get(self, key: str) -> Prediction | None:
        return self.get_sync(key)

    async def put(self, key: str, value: Prediction) -> None:
        self.put_sync(key, value)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


def _encode(value: Prediction) -> bytes:
    labels = value.labels
    proba = value.probabilities
    return orjson.dumps(
        {
            "l": labels.tolist(),
            "k": labels.dtype.kind,
            "p": None if proba is None else proba.tolist(),
        }
    )


def _decode(data: bytes) -> Prediction:
    raw = orjson.loads(data)
    dtype = object if raw["k"] in "OUS" else None
    labels = np.asarray(raw["l"], dtype=dtype)
    proba = None if raw["p"] is None else np.asarray(raw["p"], dtype=np.float64)
    return Prediction(labels, proba)


class RedisCache:
    """Entries in Redis under ``prefix`` with a server-side TTL; shared across processes."""

    def __init__(
        self, url: str, *, ttl_seconds: float = 300.0, prefix: str = DEFAULT_PREFIX
    ) -> None:
        if ttl_seconds <= 0:
            raise ConfigError(f"cache ttl_seconds must be > 0, got {ttl_seconds}.")
        self.url = url
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.prefix = prefix
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:  # lazily: constructors do no I/O
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(self.url)
        return self._client

    async def get(self, key: str) -> Prediction | None:
        try:
            data = await self._redis().get(self.prefix + key)
        except Exception as exc:  # redis.RedisError, OSError: the cache is unreachable
            raise StoreError(f"The prediction cache at {self.url} failed: {exc}") from exc
        return None if data is None else _decode(data)

    async def put(self, key: str, value: Prediction) -> None:
        try:
            await self._redis().set(self.prefix + key, _encode(value), px=self.ttl_ms)
        except Exception as exc:
            raise StoreError(f"The prediction cache at {self.url} failed: {exc}") from exc

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class CacheMetrics:
    """Hit/miss counters, the hit ratio and the memory cache's size, in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.hits = Counter(
            "shipyard_prediction_cache_hits", "Requests answered from the cache.", registry=registry
        )
        self.misses = Counter(
            "shipyard_prediction_cache_misses",
            "Requests the cache could not answer (the model ran).",
            registry=registry,
        )
        self.ratio = Gauge(
            "shipyard_prediction_cache_hit_ratio",
            "Hits / (hits + misses) since this process started.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.bytes = Gauge(
            "shipyard_prediction_cache_bytes",
            "Memory the in-process prediction cache's answers hold (summed over workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.max_bytes = Gauge(
            "shipyard_prediction_cache_max_bytes",
            "The in-process prediction cache's bound (per worker; --cache-max-bytes).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._hits = 0
        self._total = 0

    def size(self, cache: PredictionCache) -> None:
        """Copy the memory cache's size (other caches keep theirs elsewhere)."""
        if isinstance(cache, MemoryCache):
            self.bytes.set(cache.bytes)
            self.max_bytes.set(cache.max_bytes)

    def record(self, hit: bool) -> None:
        self._total += 1
        if hit:
            self._hits += 1
            self.hits.inc()
        else:
            self.misses.inc()
        self.ratio.set(self._hits / self._total)


def build_cache(
    spec: str | None,
    *,
    max_entries: int,
    ttl_seconds: float,
    max_bytes: int | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> PredictionCache | None:
    """The cache ``--cache`` asks for: None/"" (off), "memory", or a ``redis://`` URL."""
    if not spec:
        return None
    if spec == "memory":
        return MemoryCache(max_bytes=max_bytes, max_entries=max_entries, ttl_seconds=ttl_seconds)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(spec, ttl_seconds=ttl_seconds, prefix=prefix)
    raise ConfigError(
        f"Unknown prediction cache {spec!r}: use 'memory' (in-process) or a Redis URL "
        "such as redis://127.0.0.1:6379/0 (shared by workers)."
    )


__all__ = [
    "MAX_CACHED_ROWS",
    "CacheMetrics",
    "MemoryCache",
    "PredictionCache",
    "RedisCache",
    "build_cache",
    "cache_key",
    "default_cache_bytes",
    "input_digest",
    "prediction_bytes",
]
