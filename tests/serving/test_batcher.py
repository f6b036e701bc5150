"""The adaptive batcher: answers stay with their requests, batches stay bounded, overload is 503."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from serving_helpers import IrisRegistry, serve

from shipyard.clock import ManualClock
from shipyard.errors import ConfigError, SchemaError
from shipyard.quickstart import iris_frame
from shipyard.registry.optimize import optimize_version
from shipyard.serving import batcher as batcher_module
from shipyard.serving.batcher import (
    Batcher,
    BatchMetrics,
    BatchSettings,
    DeadlineExceededError,
    OverloadedError,
)
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.runtime import ServedModel, load_served_model


def _rows(n: int, seed: int = 0) -> list[dict[str, float]]:
    X, _ = iris_frame()
    rng = np.random.default_rng(seed)
    picked = X.sample(n, replace=True, random_state=seed).to_numpy()
    picked = picked + rng.normal(0, 0.3, picked.shape)  # near class borders too
    return [dict(zip(X.columns, map(float, row), strict=True)) for row in picked]


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_batch_size"):
        BatchSettings(max_batch_size=0)
    with pytest.raises(ConfigError, match="max_queue_size"):
        BatchSettings(max_batch_size=8, max_queue_size=4)


def test_concurrent_requests_share_bounded_batches_and_keep_their_answers(
    iris: IrisRegistry,
) -> None:
    record = iris.client.registry.resolve("iris:2")  # the forest: per-row answers differ
    served = load_served_model(iris.client.registry, record)
    metrics = ServingMetrics()
    batcher = Batcher(BatchSettings(max_batch_size=8), metrics=BatchMetrics(metrics.registry))
    rows = _rows(64)
    inputs = [served.model.prepare(r) for r in rows]

    async def scenario() -> list[tuple[np.ndarray, np.ndarray | None]]:
        deadline = time.monotonic() + 30
        results = await asyncio.gather(
            *(batcher.submit(served, X, deadline=deadline) for X in inputs)
        )
        await batcher.close()
        return [(r.labels, r.probabilities) for r in results]

    answers = asyncio.run(scenario())
    for X, (labels, proba) in zip(inputs, answers, strict=True):
        alone_labels = served.model.predictor.predict(X)
        alone_proba = served.model.predictor.predict_proba(X)
        assert labels.tolist() == alone_labels.tolist()
        assert proba is not None and np.allclose(proba, alone_proba, atol=1e-12)
    text = metrics.render()[0].decode()
    count = float(_sample(text, "shipyard_batch_rows_count"))
    total = float(_sample(text, "shipyard_batch_rows_sum"))
    assert total == 64
    assert count < 64, "concurrent requests should have shared model calls"
    assert float(_sample(text, 'shipyard_batch_rows_bucket{le="8.0",model=""}')) == count


def _sample(text: str, prefix: str) -> str:
    line = next(ln for ln in text.splitlines() if ln.startswith(prefix))
    return line.rsplit(" ", 1)[1]


def test_each_http_answer_matches_its_own_single_row_prediction(iris: IrisRegistry) -> None:
    iris.client.registry.set_alias("iris", "production", iris.forest)
    model = iris.client.registry.load("iris:2")
    rows = _rows(96, seed=1)
    server = serve(iris.client, max_batch_size=16, max_wait_ms=5)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def ask(row: dict[str, float]) -> dict[str, object]:
                answer = http.post("/predict", json=row)
                assert answer.status_code == 200, answer.text
                return answer.json()

            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(ask, rows))
            metrics = http.get("/metrics").text
    finally:
        server.stop()
    classes = [str(c) for c in model.classes.tolist()]
    for row, answer in zip(rows, answers, strict=True):
        assert answer["prediction"] == model.predict(row)[0]
        expected = dict(zip(classes, model.predict_proba(row)[0].tolist(), strict=True))
        assert answer["probabilities"] == pytest.approx(expected, abs=1e-12)
    assert "shipyard_batch_queue_wait_seconds_bucket" in metrics


def test_a_full_queue_answers_503_with_retry_after(iris: IrisRegistry) -> None:
    # One batch of one row at a time, one more row may wait: the third concurrent
    # request finds the queue full.
    server = serve(iris.client, "slow", max_batch_size=1, max_queue=1)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def ask(_: int) -> httpx.Response:
                return http.post("/predict", json={"x": 1.0, "delay": 0.4})

            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(ask, range(6)))
    finally:
        server.stop()
    codes = sorted(a.status_code for a in answers)
    assert 200 in codes
    refused = [a for a in answers if a.status_code == 503]
    assert refused, codes
    assert refused[0].headers["Retry-After"] == "1"
    assert "queue" in refused[0].json()["error"]


def _gated(
    served: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Hold the model's calls until ``gate`` is set (the model stays busy); ``entered``
    is set by the first call as it starts, so a test knows the model is busy."""
    gate = threading.Event()
    entered = threading.Event()
    predictor = served.model.predictor
    for name in ("predict", "predict_both"):  # whichever one the server calls
        original = getattr(predictor, name, None)
        if original is None:
            continue

        def held(X: Any, original: Any = original) -> Any:
            entered.set()
            assert gate.wait(30), "the test never opened the gate"
            return original(X)

        monkeypatch.setattr(predictor, name, held)
    return gate, entered


async def _until(condition: Callable[[], bool]) -> None:
    """Let the event loop run other tasks until ``condition()`` holds: no wall-clock sleep."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the batcher never reached the expected state")


def test_overload_is_raised_at_submit(iris: IrisRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    served = load_served_model(iris.client.registry, iris.client.registry.resolve("iris:1"))
    clock = ManualClock()
    batcher = Batcher(BatchSettings(max_batch_size=2, max_queue_size=2), metrics=None, clock=clock)
    X = served.model.prepare(_rows(2))
    gate, entered = _gated(served, monkeypatch)

    async def scenario() -> None:
        deadline = clock.monotonic() + 30
        # The first runs at once (the model was idle); the second fills the queue.
        running = asyncio.ensure_future(batcher.submit(served, X, deadline=deadline))
        assert await asyncio.to_thread(entered.wait, 30), "the model was never called"
        queued = asyncio.ensure_future(batcher.submit(served, X, deadline=deadline))
        await _until(lambda: batcher.queued_rows == 2)
        with pytest.raises(OverloadedError, match="full"):
            await batcher.submit(served, X, deadline=deadline)
        gate.set()
        assert len((await running).labels) == 2
        assert len((await queued).labels) == 2
        await batcher.close()

    asyncio.run(scenario())


def test_a_request_past_its_deadline_is_not_run(
    iris: IrisRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = load_served_model(iris.client.registry, iris.client.registry.resolve("iris:1"))
    clock = ManualClock()
    batcher = Batcher(BatchSettings(max_batch_size=4), metrics=None, clock=clock)
    X = served.model.prepare(_rows(1))
    gate, entered = _gated(served, monkeypatch)

    async def scenario() -> None:
        # A request in flight keeps the model busy, so the late one has to queue.
        running = asyncio.ensure_future(batcher.submit(served, X, deadline=clock.monotonic() + 30))
        assert await asyncio.to_thread(entered.wait, 30), "the model was never called"
        late = asyncio.ensure_future(batcher.submit(served, X, deadline=clock.monotonic() + 0.01))
        await _until(lambda: batcher.queued_rows == 1)
        clock.advance(seconds=1)  # the late request's deadline passes while it waits
        gate.set()
        assert len((await running).labels) == 1
        with pytest.raises(DeadlineExceededError, match=r"waited 1\.000 s .* past its deadline"):
            await late
        ok = await batcher.submit(served, X, deadline=clock.monotonic() + 30)
        assert len(ok.labels) == 1
        await batcher.close()

    asyncio.run(scenario())


def test_a_batch_waiting_for_company_ends_when_its_real_wait_does(
    iris: IrisRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a batch waits up to max_wait_ms for more requests; with a clock that
    never moves (a manual one) that wait must still end once it timed out."""
    served = load_served_model(iris.client.registry, iris.client.registry.resolve("iris:1"))
    clock = ManualClock()
    batcher = Batcher(BatchSettings(max_batch_size=8, max_wait_ms=20), metrics=None, clock=clock)
    X = served.model.prepare(_rows(1))
    gate, entered = _gated(served, monkeypatch)

    async def scenario() -> None:
        deadline = clock.monotonic() + 30
        running = asyncio.ensure_future(batcher.submit(served, X, deadline=deadline))
        assert await asyncio.to_thread(entered.wait, 30), "the model was never called"
        batcher._load = 4.0  # recent batches were crowded: the next one waits for company
        queued = asyncio.ensure_future(batcher.submit(served, X, deadline=deadline))
        await _until(lambda: batcher.queued_rows == 1)
        gate.set()
        assert len((await running).labels) == 1
        assert len((await asyncio.wait_for(queued, 10)).labels) == 1
        await batcher.close()

    asyncio.run(scenario())


def test_one_unscorable_request_does_not_fail_its_batch_neighbours(iris: IrisRegistry) -> None:
    served = load_served_model(iris.client.registry, iris.client.registry.resolve("iris:1"))
    batcher = Batcher(BatchSettings(max_batch_size=8), metrics=None)
    good = [served.model.prepare(r) for r in _rows(6)]
    # Finite but so large that the scaler overflows to infinity inside the model.
    bad = served.model.prepare({k: 1e308 for k in _rows(1)[0]})

    async def scenario() -> list[object]:
        deadline = time.monotonic() + 30
        calls = [batcher.submit(served, X, deadline=deadline) for X in [*good[:3], bad, *good[3:]]]
        out = await asyncio.gather(*calls, return_exceptions=True)
        await batcher.close()
        return out

    answers = asyncio.run(scenario())
    assert isinstance(answers[3], SchemaError), answers[3]
    for X, answer in zip(good, [*answers[:3], *answers[4:]], strict=True):
        assert answer.labels.tolist() == served.model.predictor.predict(X).tolist()


def test_a_fast_compiled_model_runs_on_the_loop_and_keeps_answers_apart(
    iris: IrisRegistry,
) -> None:
    registry = iris.client.registry
    assert optimize_version(registry, "iris:2").verified
    served = load_served_model(registry, registry.resolve("iris:2"))
    assert hasattr(served.model.predictor, "predict_both")  # the ONNX graph serves
    # The inline decision rests on the measured cost of a call: a clock that only moves
    # when told makes the graph's calls cost nothing, whatever else loads the machine.
    clock = ManualClock()
    batcher = Batcher(BatchSettings(max_batch_size=8), metrics=None, clock=clock)
    inputs = [served.model.prepare(r) for r in _rows(60, seed=2)]

    async def scenario() -> list[object]:
        deadline = clock.monotonic() + 30
        first = await batcher.submit(served, inputs[0], deadline=deadline)  # measured
        assert batcher._runs_inline(served)
        rest = await asyncio.gather(
            *(batcher.submit(served, X, deadline=deadline) for X in inputs[1:])
        )
        await batcher.close()
        return [first, *rest]

    answers = asyncio.run(scenario())
    for X, answer in zip(inputs, answers, strict=True):
        labels, proba = served.model.predictor.predict_both(X)
        assert answer.labels.tolist() == labels.tolist()
        np.testing.assert_allclose(answer.probabilities, proba, atol=1e-12)


def test_a_lone_request_skips_the_queue(
    iris: IrisRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client at a time: every Python model call runs at once, none waits in the queue.

    However fast the call (a scikit-learn classifier answering in well under
    ``INLINE_SECONDS`` on a quiet machine), only a compiled graph runs on the event
    loop and queues (see the next test).
    """
    # Any call counts as fast: whatever the machine's load, only the runtime decides.
    monkeypatch.setattr(batcher_module, "INLINE_SECONDS", 60.0)
    registry = iris.client.registry
    served = load_served_model(registry, registry.resolve("iris:1"))
    assert served.runtime == "sklearn"
    metrics = ServingMetrics()
    batcher = Batcher(BatchSettings(), metrics=BatchMetrics(metrics.registry))
    inputs = [served.model.prepare(r) for r in _rows(5)]

    async def scenario() -> list[np.ndarray]:
        deadline = time.monotonic() + 30
        answers = [(await batcher.submit(served, X, deadline=deadline)).labels for X in inputs]
        await batcher.close()
        return answers

    answers = asyncio.run(scenario())
    for X, labels in zip(inputs, answers, strict=True):
        assert labels.tolist() == served.model.predictor.predict(X).tolist()
    text = metrics.render()[0].decode()
    assert float(_sample(text, "shipyard_batch_queue_wait_seconds_count")) == 5
    assert float(_sample(text, "shipyard_batch_queue_wait_seconds_sum")) == 0.0
