"""Reading ahead on a thread: order, errors, early stops, reading before being asked."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shipyard.ahead import ReadAhead, prefetched


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


def test_bad_depths_are_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        list(prefetched(iter([1]), depth=0))
    with pytest.raises(ValueError, match="depth"):
        ReadAhead(iter([1]), depth=0)


def test_read_ahead_reads_before_it_is_asked_and_close_stops_it_unasked() -> None:
    read_two = threading.Event()
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(1_000):
                if i == 2:
                    read_two.set()
                yield i
        finally:
            closed.set()

    ahead = ReadAhead(items(), depth=3)
    assert read_two.wait(5)  # read on its thread before anyone asked for an item
    ahead.close()  # never iterated: still stops, and the source's clean-up runs
    assert closed.wait(5)
    assert not ahead._reader.is_alive()
    assert list(ahead) == []


def test_read_ahead_raises_the_readers_error_then_stops() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("bad row")

    with ReadAhead(items()) as ahead:
        assert next(ahead) == 1
        with pytest.raises(ValueError, match="bad row"):
            next(ahead)
        assert list(ahead) == []
