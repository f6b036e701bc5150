"""The prediction cache: bounded, canonical, and never across versions (memory and Redis)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from serving_helpers import IrisRegistry, serve

from shipyard.errors import ConfigError
from shipyard.serving.cache import (
    CacheMetrics,
    MemoryCache,
    RedisCache,
    build_cache,
    cache_key,
    input_digest,
)
from shipyard.serving.fastpath import FastPath
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.runtime import Prediction, load_served_model

REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Iris-like but between the classes, so the two models' answers differ visibly.
BORDER = {"sepal_length": 6.0, "sepal_width": 2.8, "petal_length": 4.9, "petal_width": 1.6}


def test_memory_cache_is_a_bounded_lru_with_ttl() -> None:
    now = [0.0]
    cache = MemoryCache(max_entries=2, ttl_seconds=10, clock=lambda: now[0])
    one = Prediction(np.array([1]), None)
    cache.put_sync("a", one)
    cache.put_sync("b", one)
    assert cache.get_sync("a") is one  # "a" is now the most recent
    cache.put_sync("c", one)
    assert cache.get_sync("b") is None and cache.get_sync("a") is one and len(cache) == 2
    now[0] = 11.0
    assert cache.get_sync("a") is None


def test_bad_cache_specs_are_refused() -> None:
    with pytest.raises(ConfigError, match="memory"):
        build_cache("memcached://x", max_entries=1, ttl_seconds=1)
    with pytest.raises(ConfigError, match="max_entries"):
        MemoryCache(max_entries=0)
    assert build_cache(None, max_entries=1, ttl_seconds=1) is None


def test_keys_follow_the_validated_input_and_the_version(iris: IrisRegistry) -> None:
    registry = iris.client.registry
    v1 = load_served_model(registry, registry.resolve("iris:1"))
    v2 = load_served_model(registry, registry.resolve("iris:2"))
    as_int = {k: int(v) for k, v in {**BORDER, "sepal_length": 6.0}.items()}
    as_float = {k: float(v) for k, v in as_int.items()}
    assert input_digest(v1.model.prepare(as_int)) == input_digest(v1.model.prepare(as_float))
    X = v1.model.prepare(BORDER)
    assert cache_key(v1, X) != cache_key(v2, X)
    assert cache_key(v1, X).startswith("iris:1:")


def _ratio(metrics_text: str) -> float:
    line = next(
        ln
        for ln in metrics_text.splitlines()
        if ln.startswith("shipyard_prediction_cache_hit_ratio")
    )
    return float(line.rsplit(" ", 1)[1])


def test_memory_cache_across_a_hot_swap(iris: IrisRegistry) -> None:
    registry = iris.client.registry
    forest = registry.load("iris:2")
    server = serve(iris.client, cache="memory")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            first = http.post("/predict", json=BORDER).json()
            again = http.post("/predict", json=BORDER).json()
            assert first["version"] == again["version"] == 1
            assert again["probabilities"] == first["probabilities"]
            assert _ratio(http.get("/metrics").text) == pytest.approx(0.5)
            registry.set_alias("iris", "production", 2)
            deadline = time.monotonic() + 20
            while server.app.state.runtime.current.version != 2:
                assert time.monotonic() < deadline, "the server never swapped to iris:2"
                time.sleep(0.05)
            swapped = http.post("/predict", json=BORDER).json()
    finally:
        server.stop()
    assert swapped["version"] == 2
    expected = forest.predict_proba(BORDER)[0]
    assert list(swapped["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-12)
    assert swapped["probabilities"] != first["probabilities"]


@pytest.fixture
def redis_cache() -> Iterator[RedisCache]:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        available = True
    except (redis.RedisError, OSError):
        available = False
    if not available:
        reason = f"Redis is not reachable at {REDIS_URL}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: every back end must be tested)")
        pytest.skip(reason)
    prefix = f"shipyard-test-{uuid.uuid4().hex}:"  # isolates this test's keys
    yield RedisCache(REDIS_URL, ttl_seconds=30, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


def test_redis_cache_is_shared_but_never_across_versions(
    iris: IrisRegistry, redis_cache: RedisCache
) -> None:
    registry = iris.client.registry
    v1 = load_served_model(registry, registry.resolve("iris:1"))
    v2 = load_served_model(registry, registry.resolve("iris:2"))
    metrics = ServingMetrics()

    shared = CacheMetrics(metrics.registry)
    # Two "workers" with their own fast path, on the same Redis keys.
    worker_a, worker_b = (
        FastPath(batcher=None, cache=redis_cache, cache_metrics=shared, request_timeout=10)
        for _ in range(2)
    )

    async def scenario() -> list[Prediction]:
        _, a1 = await worker_a.predict(v1, BORDER)  # miss: computed by iris:1
        _, b1 = await worker_b.predict(v1, BORDER)  # hit: shared through Redis
        _, b2 = await worker_b.predict(v2, BORDER)  # miss: another version
        await redis_cache.close()
        return [a1, b1, b2]

    a1, b1, b2 = asyncio.run(scenario())
    np.testing.assert_array_equal(b1.probabilities, a1.probabilities)
    assert b1.labels.tolist() == a1.labels.tolist()
    own = v2.model.predict_proba(BORDER)
    np.testing.assert_allclose(b2.probabilities, own, atol=1e-12)
    assert not np.allclose(b2.probabilities, a1.probabilities)
    text = metrics.render()[0].decode()
    assert "shipyard_prediction_cache_hits_total 1.0" in text
    assert "shipyard_prediction_cache_misses_total 2.0" in text
