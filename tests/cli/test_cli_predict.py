"""``shipyard predict`` through Typer's CliRunner, on real files and a real registry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app as root_app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


APP = root_app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    client = Shipyard(Settings(home=tmp_path_factory.mktemp("cli") / "home", user="tester"))
    X, y = iris_frame()
    version = client.registry.log_model(
        LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X
    )
    client.registry.set_alias("iris", "production", version.version)
    yield client
    client.close()


@pytest.fixture
def rows() -> pd.DataFrame:
    X, _ = iris_frame()
    rng = np.random.default_rng(0)
    return X.iloc[rng.integers(0, len(X), 2_500)].reset_index(drop=True)


def flat(text: str) -> str:
    """Output without line breaks and Rich's box drawing, for substring checks."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


def run(client: Shipyard, *args: str | Path):
    return CliRunner().invoke(APP, ["predict", *map(str, args)], obj=client)


def test_parquet_in_parquet_out_with_a_summary(client, rows, tmp_path):
    rows.to_parquet(tmp_path / "in.parquet")
    result = run(
        client,
        "iris",
        "--input",
        tmp_path / "in.parquet",
        "--output",
        tmp_path / "out.parquet",
        "--chunk-size",
        "1000",
    )
    assert result.exit_code == 0, result.output
    assert "rows scored" in result.stdout and "2,500" in result.stdout
    out = pd.read_parquet(tmp_path / "out.parquet")
    model = client.registry.load("iris")
    assert out["row_id"].tolist() == list(range(2_500))
    assert out["prediction"].tolist() == model.predict(rows).tolist()
    assert set(out["model_version"]) == {"iris:1"}


def test_json_summary_and_rejects(client, rows, tmp_path):
    bad = rows.astype(object)
    bad.loc[7, "sepal_width"] = "unknown"
    bad.loc[1_999, "petal_length"] = None
    bad.insert(0, "visit", range(1_000, 3_500))
    bad.to_csv(tmp_path / "in.csv", index=False)
    result = run(
        client,
        "iris:1",
        "-i",
        tmp_path / "in.csv",
        "-o",
        tmp_path / "out.csv",
        "--rejects",
        tmp_path / "rejects.parquet",
        "--id-column",
        "visit",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows_read"], summary["rows_scored"], summary["rows_rejected"]) == (
        2_500,
        2_498,
        2,
    )
    assert [r["row"] for r in summary["rejects"]] == [7, 1_999]
    assert (
        summary["rejects"][0]["reason"]
        == "sepal_width: 'unknown' is not a number; expected a float"
    )
    assert summary["rows_per_second"] > 0 and summary["model"] == "iris:1"
    rejects = pd.read_parquet(tmp_path / "rejects.parquet")
    assert rejects["visit"].tolist() == ["1007", "2999"]  # ids read from CSV are text
    assert rejects["row_number"].tolist() == [7, 1_999]


def test_rejected_rows_are_listed_in_the_human_summary(client, rows, tmp_path):
    bad = rows.astype(object)
    bad.loc[3, "petal_width"] = "inf"
    bad.to_csv(tmp_path / "in.csv", index=False)
    result = run(client, "iris", "-i", tmp_path / "in.csv", "-o", tmp_path / "out.parquet")
    assert result.exit_code == 0, result.output
    assert "row 3: petal_width: infinity; expected a finite float" in result.stdout
    assert "--rejects FILE" in result.stdout


def test_strict_fails_with_the_row_column_and_type_and_writes_nothing(client, rows, tmp_path):
    bad = rows.astype(object)
    bad.loc[1_234, "sepal_length"] = "long"
    bad.to_csv(tmp_path / "in.csv", index=False)
    result = run(
        client,
        "iris",
        "-i",
        tmp_path / "in.csv",
        "-o",
        tmp_path / "out.csv",
        "--strict",
        "--chunk-size",
        "500",
    )
    assert result.exit_code == 1
    message = flat(result.stderr)
    assert "Row 1234 (0-based)" in message
    assert "sepal_length: 'long' is not a number; expected a float" in message
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_column_lists_what_the_model_takes(client, rows, tmp_path):
    rows.drop(columns="petal_length").to_parquet(tmp_path / "in.parquet")
    result = run(client, "iris", "-i", tmp_path / "in.parquet", "-o", tmp_path / "out.csv")
    assert result.exit_code == 1
    message = flat(result.stderr)
    assert "has no column 'petal_length'" in message
    assert "sepal_length (float), sepal_width (float), petal_length (float), petal_width" in message


def _sqlite_with_rows(path: Path, rows: pd.DataFrame) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        rows.to_sql("measurements", conn, index=False)
    engine.dispose()
    return url


def test_a_sql_table_and_a_sql_query(client, rows, tmp_path):
    url = _sqlite_with_rows(tmp_path / "rows.db", rows)
    result = run(
        client,
        "iris",
        "--input-db",
        url,
        "--input-table",
        "measurements",
        "-o",
        tmp_path / "out.csv",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_scored"] == 2_500
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["prediction"].tolist() == client.registry.load("iris").predict(rows).tolist()
    result = run(
        client,
        "iris",
        "--input-db",
        url,
        "--input-query",
        "SELECT * FROM measurements LIMIT 10",
        "-o",
        tmp_path / "q.parquet",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_scored"] == 10


@pytest.mark.postgres
def test_a_postgresql_table(client, rows, tmp_path, postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        rows.to_sql("measurements", conn, index=False)
    engine.dispose()
    result = run(
        client,
        "iris",
        "--input-db",
        postgres_url,
        "--input-table",
        "measurements",
        "-o",
        tmp_path / "out.parquet",
        "--chunk-size",
        "1000",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chunks"] == 3
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 2_500


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-o", "out.csv"], "give a file to score"),
        (["-i", "a.csv", "--input-db", "sqlite://", "-o", "out.csv"], "not both"),
        (["--input-db", "sqlite://", "-o", "out.csv"], "exactly one of --input-table"),
        (["--input-table", "t", "-o", "out.csv"], "need --input-db"),
        (["-i", "a.csv", "-o", "out.txt"], "pass --format parquet|csv"),
    ],
)
def test_usage_errors(client, tmp_path, args, expected):
    result = CliRunner().invoke(APP, ["predict", "iris", *args], obj=client)
    assert result.exit_code in (1, 2)
    assert expected in flat(result.stderr)


def test_an_unknown_model_is_an_error_not_a_traceback(client, rows, tmp_path):
    rows.to_parquet(tmp_path / "in.parquet")
    result = run(client, "nosuch", "-i", tmp_path / "in.parquet", "-o", tmp_path / "o.csv")
    assert result.exit_code == 1
    assert "nosuch" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_batch_predictions_are_logged_and_take_labels(client, rows, tmp_path):
    """Every batch row lands in the prediction log under the job id, numbered as in the
    input, so a label for input row N joins as {"request_id": job, "row": N}."""
    from shipyard.monitoring.feedback import record_feedback
    from shipyard.monitoring.records import FeedbackItem

    rows.to_parquet(tmp_path / "in.parquet")
    result = run(
        client, "iris", "--input", tmp_path / "in.parquet", "--output", tmp_path / "o.parquet",
        "--chunk-size", "1000", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)["job_id"]
    logged = client.prediction_log.read("iris", since="1h")
    mine = logged[logged["request_id"] == job].sort_values("row")
    assert mine["row"].tolist() == list(range(len(rows)))
    assert set(mine["source"]) == {"batch"}
    scored = pd.read_parquet(tmp_path / "o.parquet")
    assert mine["prediction"].tolist() == scored["prediction"].tolist()
    outcome = record_feedback(
        client.prediction_log, [FeedbackItem(request_id=job, label="setosa", row=1500)]
    )
    assert outcome.accepted == 1 and not outcome.unknown_ids
