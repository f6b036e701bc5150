"""Nested runs: ``nested=True`` and ``parent=`` record the tree; children inherit the experiment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.errors import RunNotFoundError
from shipyard.store.database import Database
from shipyard.store.run_store import RunStore
from shipyard.tracking.runs import Tracker


@pytest.fixture
def tracker(database: Database) -> Iterator[Tracker]:
    tracker = Tracker(RunStore(database), actor="ann")
    yield tracker
    tracker.writer.close()


def test_nested_and_parent_record_the_tree(tracker: Tracker) -> None:
    with tracker.start_run("search", name="grid") as parent:
        with (
            tracker.start_run(nested=True, name="c1") as child,
            tracker.start_run(nested=True, name="fold") as grandchild,
        ):
            pass
        other = tracker.start_run(parent=parent, name="c2")
        other.end()
        plain = tracker.start_run("search", name="top")
        plain.end()
    store = tracker.store
    assert store.get_run(child.id).parent_id == parent.id
    assert store.get_run(child.id).experiment == "search"
    assert store.get_run(grandchild.id).parent_id == child.id
    assert store.get_run(other.id).parent_id == parent.id
    assert store.get_run(plain.id).parent_id is None
    assert [r.name for r in store.children(parent.id)] == ["c1", "c2"]


def test_parent_by_id_and_missing_parent(tracker: Tracker) -> None:
    with tracker.start_run("a") as parent:
        pass
    child = tracker.start_run(parent=parent.id)
    child.end()
    assert tracker.store.get_run(child.id).parent_id == parent.id
    assert tracker.store.get_run(child.id).experiment == "a"
    with pytest.raises(RunNotFoundError, match="nope"):
        tracker.start_run("a", parent="nope")


def test_nested_without_an_active_run_is_a_top_level_run(tracker: Tracker) -> None:
    with tracker.start_run("a", nested=True) as run:
        pass
    assert tracker.store.get_run(run.id).parent_id is None
