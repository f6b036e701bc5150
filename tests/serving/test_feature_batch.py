"""FeatureBatcher: the requests that arrive together share one join (one online read per
view); each gets its own rows or its own error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from shipyard.errors import SchemaError, StoreError
from shipyard.serving.feature_batch import FeatureBatcher

SPEC: dict[str, Any] = {"refs": ["v:x"], "views": {"v": 1}, "join_keys": ["id"]}


class FakeJoin:
    """Joins ``{"id": n}`` to ``x = 10 * n``; id 0 has no features (its own 422)."""

    def __init__(self, *, inline: bool = True, gate: threading.Event | None = None) -> None:
        self._inline = inline
        self.calls: list[list[Any]] = []
        self.gate = gate  # a thread-read blocks until the test opens it
        self.fail_shared_with: int | None = None  # a request whose rows break a shared call
        self.store_down = False

    @property
    def inline(self) -> bool:
        return self._inline

    def join_many(self, spec: Mapping[str, Any], payloads: Sequence[Any]) -> list[Any]:
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append(list(payloads))
        if self.store_down:
            raise StoreError("The online store cannot be reached.")
        ids = [p["id"] for p in payloads]
        if self.fail_shared_with in ids and len(ids) > 1:
            raise ValueError("one request's rows broke the shared call")
        if self.fail_shared_with in ids:
            raise ValueError(f"request {self.fail_shared_with} cannot be joined")
        return [
            SchemaError(f"No online features for id={i} in view 'v'", field="id")
            if i == 0
            else {"id": i, "x": 10 * i}
            for i in ids
        ]


async def _fetch_all(batcher: FeatureBatcher, ids: list[int]) -> list[Any]:
    return await asyncio.gather(
        *(batcher.fetch(SPEC, {"id": i}) for i in ids), return_exceptions=True
    )


def test_requests_arriving_together_share_one_join_and_get_their_own_answers() -> None:
    join = FakeJoin()
    sizes: list[int] = []
    batcher = FeatureBatcher(join, on_read=sizes.append)
    ids = [3, 0, 5, 3, 0, 8]  # known and unknown keys, some twice
    got = asyncio.run(_fetch_all(batcher, ids))
    assert len(join.calls) == 1 and sizes == [6]  # one read for the six requests
    for i, answer in zip(ids, got, strict=True):
        if i == 0:
            assert isinstance(answer, SchemaError) and "id=0" in str(answer)
        else:
            assert answer == {"id": i, "x": 10 * i}


def test_a_failing_shared_call_is_retried_request_by_request() -> None:
    join = FakeJoin()
    join.fail_shared_with = 4
    got = asyncio.run(_fetch_all(FeatureBatcher(join), [1, 4, 2]))
    assert got[0] == {"id": 1, "x": 10} and got[2] == {"id": 2, "x": 20}
    assert isinstance(got[1], ValueError) and "request 4" in str(got[1])
    assert len(join.calls) == 4  # the shared call, then each alone


def test_an_unreachable_store_fails_every_request_of_the_read_at_once() -> None:
    join = FakeJoin()
    join.store_down = True
    got = asyncio.run(_fetch_all(FeatureBatcher(join), [1, 2, 3]))
    assert all(isinstance(g, StoreError) for g in got)
    assert len(join.calls) == 1  # not retried one by one against a store that is down


def test_in_a_thread_requests_arriving_during_a_read_leave_together_with_the_next() -> None:
    gate = threading.Event()
    join = FakeJoin(inline=False, gate=gate)
    sizes: list[int] = []
    batcher = FeatureBatcher(join, on_read=sizes.append)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(batcher.fetch(SPEC, {"id": 1}))
        await asyncio.sleep(0.05)  # the first read is out, held at the gate
        later = [asyncio.ensure_future(batcher.fetch(SPEC, {"id": i})) for i in (2, 0, 4)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *later, return_exceptions=True)

    got = asyncio.run(scenario())
    assert sizes == [1, 3]
    assert [len(c) for c in join.calls] == [1, 3]
    assert got[0] == {"id": 1, "x": 10} and got[1] == {"id": 2, "x": 20}
    assert isinstance(got[2], SchemaError) and got[3] == {"id": 4, "x": 40}


@pytest.mark.parametrize("inline", [True, False])
def test_a_request_that_gave_up_is_not_joined(inline: bool) -> None:
    join = FakeJoin(inline=inline)
    batcher = FeatureBatcher(join)

    async def scenario() -> Any:
        gone = asyncio.ensure_future(batcher.fetch(SPEC, {"id": 1}))
        kept = asyncio.ensure_future(batcher.fetch(SPEC, {"id": 2}))
        await asyncio.sleep(0)  # both queued
        gone.cancel()  # its request timed out
        return await kept

    assert asyncio.run(scenario()) == {"id": 2, "x": 20}
    assert join.calls == [[{"id": 2}]]
