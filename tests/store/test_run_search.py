"""Run search in SQL on SQLite and PostgreSQL: MLflow's filter subset, order, limits, errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sqlalchemy import event

from shipyard.errors import ExperimentNotFoundError, InvalidInputError
from shipyard.store.database import Database
from shipyard.store.run_search import RunSearch
from shipyard.store.run_store import RunStore


@pytest.fixture
def grid(database: Database) -> dict[str, str]:
    """Six iris runs over C, two teams; one run in another experiment. name -> run id."""
    runs = RunStore(database)
    X, y = load_iris(return_X_y=True)
    ids = {}
    for i, c in enumerate([0.001, 0.01, 0.1, 1.0, 10.0, 100.0]):
        model = LogisticRegression(C=c, max_iter=1000).fit(X, y)
        run = runs.create_run("iris", name=f"C={c}", actor="ann" if i % 2 else "bob")
        runs.log_params(run.id, {"C": c, "solver": "lbfgs"})
        runs.log_metrics(run.id, {"accuracy": 0.0}, step=0)  # an early value, superseded
        runs.log_metrics(run.id, {"accuracy": model.score(X, y)}, step=1)
        runs.set_run_tags(run.id, {"team": "risk" if i < 3 else "growth"})
        if c == 1.0:
            runs.log_metrics(run.id, {"val loss": 0.25})
        runs.end_run(run.id, "FINISHED" if i != 5 else "FAILED")
        ids[f"C={c}"] = run.id
    other = runs.create_run("other", name="elsewhere")
    runs.log_metrics(other.id, {"accuracy": 1.0})
    ids["other"] = other.id
    return ids


def names(found) -> list[str]:
    return [r.name for r in found]


def test_metric_param_and_tag_filters(database: Database, grid: dict[str, str]) -> None:
    search = RunSearch(database)
    found = search.search(["iris"], "metrics.accuracy > 0.9", ["params.C ASC"])
    assert all(r.metrics["accuracy"] > 0.9 for r in found) and len(found) >= 3
    # The latest value is compared: every run logged 0.0 first.
    assert "C=100.0" in names(found)
    found = search.search(
        ["iris"], "metrics.accuracy > 0.9 and params.C = '1.0' and tags.team = 'growth'"
    )
    assert names(found) == ["C=1.0"]
    assert search.search(["iris"], "tags.team = 'risk' and params.C = '1.0'") == []
    assert names(search.search(["iris"], "metrics.`val loss` <= 0.25")) == ["C=1.0"]
    assert names(search.search(["iris"], 'metrics."val loss" < 0.25')) == []
    found = search.search(["iris"], "params.C IN ('0.1', '10.0')", ["params.C"])
    assert names(found) == ["C=0.1", "C=10.0"]
    found = search.search(["iris"], "params.C LIKE '0.0%'", ["params.C"])
    assert names(found) == ["C=0.001", "C=0.01"]
    found = search.search(["iris"], "tags.team ILIKE 'RI%' and params.solver != 'saga'")
    assert sorted(names(found)) == ["C=0.001", "C=0.01", "C=0.1"]


def test_attribute_filters(database: Database, grid: dict[str, str]) -> None:
    search = RunSearch(database)
    assert names(search.search(["iris"], "attributes.status = 'FAILED'")) == ["C=100.0"]
    assert names(search.search(["iris"], f"attributes.run_id = '{grid['C=0.1']}'")) == ["C=0.1"]
    assert len(search.search(["iris"], "attributes.user_id = 'ann'")) == 3
    assert names(search.search(["iris"], "run.run_name LIKE 'C=1%'", ["params.C"])) == [
        "C=1.0",
        "C=10.0",
        "C=100.0",
    ]
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert len(search.search(["iris"], f"attributes.start_time < {now_ms + 60_000}")) == 6
    assert search.search(["iris"], f"attributes.start_time > {now_ms + 60_000}") == []


def test_order_limit_and_experiments(database: Database, grid: dict[str, str]) -> None:
    search = RunSearch(database)
    found = search.search(["iris"], None, ["metrics.accuracy DESC", "params.C DESC"], 2)
    assert len(found) == 2
    assert found[0].metrics["accuracy"] >= found[1].metrics["accuracy"]
    # Runs without the sort key come last, ascending or descending.
    for direction in ("ASC", "DESC"):
        found = search.search(["iris"], None, [f"metrics.`val loss` {direction}"])
        assert found[0].name == "C=1.0"
    assert len(search.search(None, "metrics.accuracy >= 1")) >= 1
    assert "elsewhere" in names(search.search(None, None))
    assert "elsewhere" not in names(search.search(["iris"], None))
    assert len(search.search(["iris", "other"], None)) == 7
    found = search.search(["iris"], None, ["attributes.start_time ASC"])
    assert names(found)[0] == "C=0.001"
    run = found[0]
    assert run.params == {"C": "0.001", "solver": "lbfgs"} and run.tags == {"team": "risk"}


def test_search_reads_a_page_not_every_run(database: Database, grid: dict[str, str]) -> None:
    """The same number of statements for 7 runs as for 1: filtering happens in SQL."""
    search = RunSearch(database)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        search.search(None, None)
        many = len(statements)
        statements.clear()
        search.search(None, "params.C = '1.0'")
        one = len(statements)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert many == one <= 6
    assert any("run_latest_metrics" in s for s in statements)


@pytest.mark.parametrize(
    ("bad", "token"),
    [
        ("metrics.accuracy > 'high'", "'high'"),
        ("accuracy > 0.9", "accuracy"),
        ("metrics.accuracy >> 0.9", ">"),
        ("metrics.a > 1 or metrics.b < 2", "or"),
        ("params.C > '1'", ">"),
        ("attributes.colour = 'red'", "colour"),
        ("params.C IN '1'", "'1'"),
        ("metrics.a ~ 1", "~ 1"),
    ],
)
def test_bad_filters_name_the_token(database: Database, bad: str, token: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"at {token!r}")):
        RunSearch(database).search(None, bad)


def test_bad_arguments(database: Database, grid: dict[str, str]) -> None:
    search = RunSearch(database)
    with pytest.raises(ExperimentNotFoundError, match=r"'nope'.*iris"):
        search.search(["nope"], None)
    with pytest.raises(InvalidInputError, match="max_results=0"):
        search.search(None, None, None, 0)
    with pytest.raises(InvalidInputError, match="at 'sideways'"):
        search.search(None, None, ["metrics.accuracy sideways"])
    with pytest.raises(InvalidInputError, match="ends where"):
        search.search(None, "metrics.accuracy >")
