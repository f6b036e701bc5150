"""The prediction cache: bounded, canonical, and never across versions (memory and Redis)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import IrisRegistry, cli_server, serve

from shipyard.clock import ManualClock
from shipyard.errors import ConfigError
from shipyard.quickstart import iris_frame
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
    clock = ManualClock()
    cache = MemoryCache(max_entries=2, ttl_seconds=10, clock=clock)
    one = Prediction(np.array([1]), None)
    cache.put_sync("a", one)
    cache.put_sync("b", one)
    assert cache.get_sync("a") is one  # "a" is now the most recent
    cache.put_sync("c", one)
    assert cache.get_sync("b") is None and cache.get_sync("a") is one and len(cache) == 2
    clock.advance(seconds=11)
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


def _gauges(http: httpx.Client) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(http.get("/metrics").text)
        for s in family.samples
        if s.name.startswith("shipyard_prediction_cache")
    }


def test_the_memory_cache_is_bounded_by_bytes_and_skips_large_batches(
    iris: IrisRegistry,
) -> None:
    """`--cache-max-bytes`: distinct 500-row answers (~16 KB each) fill the cache up to the
    bound and no further, oldest out first; batches over 1000 rows are never cached."""
    limit = 200_000
    X, _ = iris_frame()
    rng = np.random.default_rng(0)
    batches = [
        (X.sample(500, replace=True, random_state=i) + rng.normal(0, 0.01, (500, 4))).round(4)
        for i in range(30)
    ]
    args = ("iris", "--cache", "memory", "--cache-max-bytes", str(limit))
    with cli_server(iris.settings, *args) as (_, url), httpx.Client(base_url=url) as http:
        sizes = []
        for batch in batches:
            assert http.post("/predict", json=batch.to_dict("records")).status_code == 200
            sizes.append(_gauges(http)["shipyard_prediction_cache_bytes"])
        assert _gauges(http)["shipyard_prediction_cache_max_bytes"] == limit
        assert 0 < max(sizes) <= limit and sizes[-1] > limit / 2, sizes
        assert sizes[1] > sizes[0]  # it grows while it has room...
        hits = _gauges(http)["shipyard_prediction_cache_hits_total"]
        http.post("/predict", json=batches[-1].to_dict("records"))  # ...the newest stays
        assert _gauges(http)["shipyard_prediction_cache_hits_total"] == hits + 1
        http.post("/predict", json=batches[0].to_dict("records"))  # ...the oldest went
        assert _gauges(http)["shipyard_prediction_cache_hits_total"] == hits + 1

        large = X.sample(1500, replace=True, random_state=99).to_dict("records")
        before = _gauges(http)
        for _ in range(2):
            assert http.post("/predict", json=large).status_code == 200
        after = _gauges(http)
    for name in ("hits_total", "misses_total", "bytes"):
        key = f"shipyard_prediction_cache_{name}"
        assert after[key] == before[key], name  # neither looked up nor stored


def test_the_memory_cache_bound_defaults_to_a_small_share_of_memory(iris: IrisRegistry) -> None:
    server = cli_server(iris.settings, "iris", "--cache", "memory")
    with server as (_, url), httpx.Client(base_url=url) as http:
        bound = _gauges(http)["shipyard_prediction_cache_max_bytes"]
    assert bound == min(256 * 2**20, psutil.virtual_memory().total // 20)


def test_answers_are_counted_by_their_bytes() -> None:
    cache = MemoryCache(max_bytes=1_000_000)
    shared = np.array(["setosa", "virginica"] * 500, dtype=object)  # the model's class objects
    cache.put_sync("k1", Prediction(shared, np.zeros((1000, 3))))
    arrays = 1000 * 8 + 1000 * 3 * 8
    assert arrays < cache.bytes < arrays + 3_000  # not 1000 string objects
    own = np.array([f"text {i}" for i in range(1000)], dtype=object)  # a string per row
    cache.put_sync("k2", Prediction(own, None))
    assert cache.bytes - arrays > 1000 * (8 + 50)
    big = Prediction(np.zeros(20_000), None)  # 160 KB: over an eighth of the bound
    cache.put_sync("k3", big)
    assert cache.get_sync("k3") is None and len(cache) == 2
    with pytest.raises(ConfigError, match="max_bytes"):
        MemoryCache(max_bytes=0)
