"""Reading ahead on a thread, and mapping ahead on a pool: order, errors, early stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from shipyard.ahead import mapped_ahead, prefetched


def test_prefetched_keeps_order_and_reads_on_another_thread() -> None:
    threads: list[str] = []

    def items() -> Iterator[int]:
        for i in range(50):
            threads.append(threading.current_thread().name)
            yield i

    assert list(prefetched(items(), depth=3)) == list(range(50))
    assert set(threads) == {"shipyard-prefetch"}


def test_prefetched_raises_the_readers_error_where_it_happened() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad row group")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad row group"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_prefetched_stops_the_reader_when_the_consumer_stops() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def items() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                produced.append(i)
                yield i
        finally:
            closed.set()  # an open file would be closed here

    reader = prefetched(items(), depth=2)
    assert next(reader) == 0
    reader.close()
    assert closed.wait(5)
    # It read no further than its bounded queue allows.
    assert len(produced) <= 5


def test_mapped_ahead_keeps_order_and_bounds_the_work_ahead() -> None:
    started: list[int] = []

    def square(x: int) -> int:
        started.append(x)
        return x * x

    with ThreadPoolExecutor(2) as pool:
        results = mapped_ahead(pool, square, range(20), ahead=2)
        assert next(results) == 0
        assert len(started) <= 3  # the first item and at most two ahead of it
        assert list(results) == [x * x for x in range(1, 20)]


def test_mapped_ahead_raises_the_functions_error() -> None:
    def check(x: int) -> int:
        if x == 3:
            raise ValueError("row 3")
        return x

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="row 3"):
        list(mapped_ahead(pool, check, range(10)))


def test_bad_depths_are_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        list(prefetched(iter([1]), depth=0))
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="ahead"):
        list(mapped_ahead(pool, str, [1], ahead=0))


def test_prefetched_starts_reading_before_the_first_item_is_asked_for() -> None:
    started = threading.Event()

    def items() -> Iterator[int]:
        started.set()
        yield 1

    reader = prefetched(items())
    assert started.wait(5)  # nothing has called next() yet
    assert list(reader) == [1]


def test_a_dropped_reader_stops_its_thread() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    reader = prefetched(items(), depth=1)
    assert next(reader) == 0
    del reader  # never closed: an error in the consumer drops it like this
    assert closed.wait(5)
