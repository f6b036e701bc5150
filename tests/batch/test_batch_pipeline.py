"""Background reader and writer threads: order kept, errors surface, early stop works."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shipyard.batch.pipeline import BackgroundWriter, prefetch


def test_prefetch_keeps_order_and_reads_on_another_thread():
    threads: list[str] = []

    def items() -> Iterator[int]:
        for i in range(50):
            threads.append(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), depth=2)) == list(range(50))
    assert set(threads) == {"shipyard-batch-reader"}


def test_prefetch_reraises_the_readers_error():
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1]


def test_stopping_early_closes_the_source():
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    stream = prefetch(items(), depth=1)
    assert next(stream) == 0
    stream.close()  # joins the reader thread
    assert closed.is_set()


@pytest.mark.parametrize("background", [True, False])
def test_writer_runs_in_order_and_reports_failures(background):
    seen: list[int] = []
    with BackgroundWriter(background=background) as writer:
        for i in range(20):
            writer.submit(seen.append, i)
    assert seen == list(range(20))

    def fail(_: object) -> None:
        raise OSError("disk full")

    writer = BackgroundWriter(background=background)
    with pytest.raises(OSError, match="disk full"):
        writer.submit(fail, None)
        writer.close()


def test_abandon_drops_queued_writes():
    release = threading.Event()
    seen: list[int] = []

    def slow(i: int) -> None:
        release.wait(5)
        seen.append(i)

    writer = BackgroundWriter(depth=4)
    for i in range(3):
        writer.submit(slow, i)
    threading.Timer(0.05, release.set).start()
    writer.abandon()
    assert len(seen) <= 1  # at most the write already running when abandoned
