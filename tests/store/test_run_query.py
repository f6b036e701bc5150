"""The runs table's query: filters, sort and paging in SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from shipyard.errors import InvalidInputError
from shipyard.store.database import Database
from shipyard.store.run_query import RunQueries, RunQuery
from shipyard.store.run_store import RunStore


@pytest.fixture
def filled(database: Database, runs: RunStore) -> tuple[RunQueries, list[str]]:
    ids = []
    for i in range(6):
        run = runs.create_run("exp-a" if i < 4 else "exp-b", name=f"run-{i}", actor="ann")
        runs.log_params(run.id, {"lr": 0.1 * (i + 1), "depth": 3})
        runs.set_run_tags(run.id, {"team": "red" if i % 2 else "blue"})
        # Stepped: the latest value (highest step) is what the table shows.
        for step in range(3):
            runs.log_metrics(run.id, {"acc": i / 10 + step / 100}, step=step)
        if i != 5:
            runs.log_metrics(run.id, {"loss": 1 - i / 10})
        runs.end_run(run.id, "FAILED" if i == 3 else "FINISHED")
        ids.append(run.id)
    return RunQueries(database), ids


def test_columns_hold_the_latest_value_of_each_metric(filled: tuple[RunQueries, list[str]]) -> None:
    queries, ids = filled
    page = queries.page(
        RunQuery(
            metric_columns=("acc", "loss"), param_columns=("lr",), order_by="name", descending=False
        )
    )
    assert page.total == 6
    first = page.runs[0]
    assert (first.id, first.metrics["acc"], first.metrics["loss"]) == (ids[0], 0.02, 1.0)
    assert first.params == {"lr": "0.1"}
    assert page.runs[5].metrics["loss"] is None  # never logged


def test_filters_combine(filled: tuple[RunQueries, list[str]]) -> None:
    queries, ids = filled
    page = queries.page(
        RunQuery(
            experiment="exp-a",
            status="FINISHED",
            filter="tags.team = 'red' and metrics.acc > 0.05",
        )
    )
    assert [r.id for r in page.runs] == [ids[1]]  # run-3 is red but FAILED
    assert queries.page(RunQuery(filter="metrics.loss <= 0.7")).total == 2
    # The whole MLflow syntax: params, LIKE, attributes.
    found = queries.page(RunQuery(filter="params.lr LIKE '0.4%' and attributes.status = 'FAILED'"))
    assert [r.id for r in found.runs] == [ids[3]]


def test_sort_by_metric_puts_runs_without_it_last_and_pages(
    filled: tuple[RunQueries, list[str]],
) -> None:
    queries, ids = filled
    order = [
        r.id
        for offset in (0, 2, 4)
        for r in queries.page(
            RunQuery(order_by="metric:loss", descending=True, offset=offset, limit=2)
        ).runs
    ]
    assert order == [ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]]
    ascending = queries.page(RunQuery(order_by="metric:loss", descending=False)).runs
    assert [r.id for r in ascending] == [ids[4], ids[3], ids[2], ids[1], ids[0], ids[5]]
    by_param = queries.page(RunQuery(order_by="param:lr", descending=True, limit=1)).runs
    assert by_param[0].id == ids[5]


def test_keys_histories_and_bad_queries(filled: tuple[RunQueries, list[str]]) -> None:
    queries, ids = filled
    assert queries.recent_keys() == (["acc", "loss"], ["depth", "lr"])
    assert queries.experiments() == ["exp-a", "exp-b"]
    history = queries.histories([ids[0]], ["acc"])
    assert history == {ids[0]: {"acc": [(0, 0.0), (1, 0.01), (2, 0.02)]}}
    with pytest.raises(InvalidInputError, match="Cannot sort runs by 'colour'"):
        queries.page(RunQuery(order_by="colour"))
    with pytest.raises(InvalidInputError, match="Invalid filter at '~ 1'"):
        queries.page(RunQuery(filter="metrics.acc ~ 1"))
    with pytest.raises(InvalidInputError, match="expected an entity starting with metrics"):
        queries.page(RunQuery(filter="acc > 0.9"))


def test_a_tree_pages_top_level_runs_with_their_nested_runs_under_them(
    database: Database, runs: RunStore
) -> None:
    search = runs.create_run("exp", name="search", actor="ann")
    kids = []
    for i in range(3):
        kid = runs.create_run("exp", name=f"candidate-{i}", actor="ann", parent_id=search.id)
        runs.log_metrics(kid.id, {"acc": 0.5 + i / 10})
        kids.append(kid)
    grandchild = runs.create_run("exp", name="fold-0", actor="ann", parent_id=kids[0].id)
    runs.log_metrics(grandchild.id, {"acc": 0.9})
    lone = runs.create_run("exp", name="lone", actor="ann")
    queries = RunQueries(database)

    page = queries.page(RunQuery(tree=True, order_by="name", descending=False))
    assert page.total == 2 and page.nested == 4  # two top-level runs, four nested
    assert [(r.name, r.depth, r.descendants) for r in page.runs] == [
        ("lone", 0, 0),
        ("search", 0, 4),
        ("candidate-0", 1, 1),
        ("fold-0", 2, 0),
        ("candidate-1", 1, 0),
        ("candidate-2", 1, 0),
    ]
    assert page.runs[3].parent_id == kids[0].id
    # One top-level run a page: the nested runs come with their parent, not on their own.
    first = queries.page(RunQuery(tree=True, order_by="name", descending=False, limit=1))
    assert [r.name for r in first.runs] == ["lone"] and first.total == 2
    # Flat: every run is a row of its own.
    assert queries.page(RunQuery(order_by="name")).total == 6
    # A nested run the filters keep but whose parent they drop is shown at the top.
    filtered = queries.page(RunQuery(tree=True, filter="metrics.acc > 0.55"))
    assert sorted((r.name, r.depth) for r in filtered.runs) == [
        ("candidate-1", 0),
        ("candidate-2", 0),
        ("fold-0", 0),
    ]
    assert lone.id not in {r.id for r in filtered.runs}
