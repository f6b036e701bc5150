"""The background writer thread: order kept, errors surface, abandoned writes dropped."""

from __future__ import annotations

import threading

import pytest

from shipyard.batch.pipeline import BackgroundWriter


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
