"""Fetching a feature-backed model's features per micro-batch, not per request.

The requests that reach the server together share one online read per feature
view (one SQLite query with ``IN (...)``, one Redis ``MGET``): per request, the
read and the work around it (parsing the model's feature references, looking up
the definitions) cost more than building the request's rows. :class:`FeatureBatcher`
queues each request's rows and joins everything queued in one call of
:meth:`~shipyard.features.serving.OnlineJoin.join_many`:

- on SQLite (``inline``: a local file answers in microseconds) on the event loop,
  one turn after the first request queued, so the requests parsed in the same
  turn of the loop leave together;
- on Redis in a worker thread; requests arriving while a read is out queue up and
  leave together with the next read.

Every request gets exactly what a join of it alone gives: its own rows, or its
own 422 (a missing or unknown key), never its neighbours'. A failure of the
whole call other than an unreachable store (a 503 for all: the store is down
for everyone) is retried request by request, so one request whose on-demand
function raises cannot fail the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import anyio

from shipyard.errors import StoreError

__all__ = ["FeatureBatcher", "FeatureJoin"]


class FeatureJoin(Protocol):
    """Request rows of a feature-backed model -> its inputs (keys, request fields,
    features), for several requests at once; ``inline`` when the read is local and
    quick enough to run on the event loop (an SQLite file), else it runs in a thread."""

    @property
    def inline(self) -> bool: ...

    def join_many(self, spec: Mapping[str, Any], payloads: Sequence[Any]) -> list[Any]:
        """Each payload's joined rows, or the exception refusing it, in order."""
        ...


class _Item:
    __slots__ = ("data", "future", "spec")

    def __init__(self, spec: Mapping[str, Any], data: Any, future: asyncio.Future[Any]) -> None:
        self.spec = spec
        self.data = data
        self.future = future


class FeatureBatcher:
    """Joins the features of the requests that arrive together, one read per view."""

    def __init__(self, join: FeatureJoin, *, on_read: Callable[[int], None] | None = None) -> None:
        self.join = join
        self.on_read = on_read  # told how many requests each read served (a histogram)
        self._queue: list[_Item] = []
        self._scheduled = False  # a flush is due on the next turn of the loop
        self._reading = False  # a read runs in a worker thread
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done

    async def fetch(self, spec: Mapping[str, Any], data: Any) -> Any:
        """``data``'s rows joined to their features (raises the request's own error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Item(spec, data, future))
        if not self._scheduled and not self._reading:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        items, self._queue = self._queue, []
        items = [item for item in items if not item.future.done()]  # gave up (timeout)
        if not items:
            return
        if self.on_read is not None:
            self.on_read(len(items))
        if self.join.inline:
            _settle(items, self._outcomes(items))
            return
        self._reading = True
        task = asyncio.ensure_future(self._read_in_thread(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_in_thread(self, items: list[_Item]) -> None:
        try:
            outcomes = await anyio.to_thread.run_sync(self._outcomes, items)
        except asyncio.CancelledError:  # the server is stopping
            for item in items:
                item.future.cancel()
            raise
        finally:
            self._reading = False
            if self._queue and not self._scheduled:  # those that came during the read
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
        _settle(items, outcomes)

    def _outcomes(self, items: list[_Item]) -> list[Any]:
        """Each item's joined rows or exception; one call per model version's spec."""
        outcomes: list[Any] = [None] * len(items)
        groups: dict[int, list[int]] = {}  # a hot swap may put two versions in one batch
        for i, item in enumerate(items):
            groups.setdefault(id(item.spec), []).append(i)
        for positions in groups.values():
            spec = items[positions[0]].spec
            try:
                joined = self.join.join_many(spec, [items[i].data for i in positions])
            except StoreError as exc:  # the online store is down: the same 503 for all
                joined = [exc] * len(positions)
            except Exception as exc:
                if len(positions) == 1:
                    joined = [exc]
                else:  # someone's rows broke the shared call: each request alone
                    joined = [self._alone(spec, items[i].data) for i in positions]
            for i, outcome in zip(positions, joined, strict=True):
                outcomes[i] = outcome
        return outcomes

    def _alone(self, spec: Mapping[str, Any], data: Any) -> Any:
        try:
            return self.join.join_many(spec, [data])[0]
        except Exception as exc:
            return exc


def _settle(items: list[_Item], outcomes: list[Any]) -> None:
    for item, outcome in zip(items, outcomes, strict=True):
        if item.future.done():
            continue
        if isinstance(outcome, BaseException):
            item.future.set_exception(outcome)
        else:
            item.future.set_result(outcome)
