"""``shipyard predict`` through Typer's CliRunner, on real files and a real registry."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
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

SHIPYARD = Path(sys.executable).with_name("shipyard")
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


def test_a_job_allocates_arrow_buffers_with_malloc_and_restores_the_pool(
    client, rows, tmp_path, monkeypatch
):
    """A job in a fresh process streams every row once: Arrow's default pool faulted in
    huge pages the kernel zeroed whole (0.4-0.5 s of system time per 1M rows)."""
    import pyarrow as pa

    import shipyard.cli.predict as predict_cli

    pools: list[str] = []
    real = predict_cli.score_file

    def score_file(*args, **kwargs):
        pools.append(pa.default_memory_pool().backend_name)
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_cli, "score_file", score_file)
    before = pa.default_memory_pool().backend_name
    rows.to_parquet(tmp_path / "in.parquet")
    result = run(client, "iris", "--input", tmp_path / "in.parquet", "--output", tmp_path / "o.csv")
    assert result.exit_code == 0, result.output
    assert pools == ["system"]
    assert pa.default_memory_pool().backend_name == before


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


def test_logged_rows_keep_their_input_row_numbers_around_rejects(client, rows, tmp_path):
    """A rejected row leaves a gap in the log: the rows after it keep their input numbers,
    so a label joined by row number lands on the row it was given for."""
    bad = rows.astype(object)
    bad.loc[[3, 1004], "petal_length"] = "oops"  # in the first and the second chunk
    bad.to_csv(tmp_path / "in.csv", index=False)
    result = run(
        client, "iris", "--input", tmp_path / "in.csv", "--output", tmp_path / "o.parquet",
        "--chunk-size", "1000", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)["job_id"]
    logged = client.prediction_log.read("iris", since="1h")
    mine = logged[logged["request_id"] == job].set_index("row").sort_index()
    assert mine.index.tolist() == [i for i in range(len(rows)) if i not in (3, 1004)]
    scored = pd.read_parquet(tmp_path / "o.parquet").set_index("row_id")
    assert mine.index.tolist() == scored.index.tolist()
    assert mine["prediction"].tolist() == scored["prediction"].tolist()
    # The logged inputs of row N are input row N's (row 5's, not row 6's, after reject 3).
    for n in (2, 5, 1003, 1005, 2499):
        assert mine.loc[n, "in_petal_length"] == rows.loc[n, "petal_length"], n


def test_rows_whose_probabilities_are_not_finite_are_rejected_with_a_reason(client, rows, tmp_path):
    """1e308 passes the signature but makes the model's probabilities NaN: such a row is
    a reject naming why, never a label read off NaN (which would be the first class)."""
    bad = rows.copy()
    bad.loc[[5, 1_800], FEATURES] = 1e308
    bad.to_parquet(tmp_path / "in.parquet")
    result = run(
        client, "iris", "-i", tmp_path / "in.parquet", "-o", tmp_path / "out.parquet",
        "--rejects", tmp_path / "rejects.csv", "--chunk-size", "1000", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows_scored"], summary["rows_rejected"]) == (2_498, 2)
    assert [r["row"] for r in summary["rejects"]] == [5, 1_800]
    assert all("not finite" in r["reason"] for r in summary["rejects"])
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert 5 not in set(out["row_id"]) and 1_800 not in set(out["row_id"])
    assert out[[c for c in out if c.startswith("proba_")]].notna().all().all()
    expected = client.registry.load("iris").predict(rows.drop(index=[5, 1_800]))
    assert out["prediction"].tolist() == expected.tolist()
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects["row_id"].tolist() == [5, 1_800]
    assert rejects["reject_reason"].str.contains("not finite").all()
    strict = run(
        client, "iris", "-i", tmp_path / "in.parquet", "-o", tmp_path / "s.parquet", "--strict",
    )  # fmt: skip
    assert strict.exit_code == 1
    assert "Row 5 (0-based)" in flat(strict.stderr) and "not finite" in flat(strict.stderr)
    assert not (tmp_path / "s.parquet").exists()


def _shipyard_env(client: Shipyard) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(client.settings.home)
    env["SHIPYARD_USER"] = "tester"
    return env


def test_a_killed_job_leaves_temp_files_that_the_next_run_removes(client, tmp_path):
    """kill -9 mid-write leaves the hidden temporary output behind (nothing can run at
    SIGKILL); the next run in that folder removes it, since its writer is provably gone."""
    X, _ = iris_frame()
    big = X.sample(400_000, replace=True, random_state=0).reset_index(drop=True)
    big.to_parquet(tmp_path / "in.parquet")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = [str(SHIPYARD), "predict", "iris", "-i", str(tmp_path / "in.parquet")]
    proc = subprocess.Popen(
        [*args, "-o", str(out_dir / "scores.csv"), "--rejects", str(out_dir / "bad.csv"),
         "--chunk-size", "2000"],
        env=_shipyard_env(client), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(p.suffix == ".tmp" for p in out_dir.iterdir()):
            assert proc.poll() is None, "the job ended before it started writing"
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = sorted(p.name for p in out_dir.iterdir())
    assert left and all(name.endswith(".tmp") for name in left), left
    # A temporary file of a writer that is still alive is not touched.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = out_dir / left[0].replace(f"-{proc.pid}-", f"-{sleeper.pid}-")
        assert alive.name != left[0]
        alive.write_bytes(b"in progress")
        foreign = out_dir / ".notes.txt.tmp"  # not Shipyard's: never touched
        foreign.write_bytes(b"mine")
        again = subprocess.run(
            [*args, "-o", str(out_dir / "scores.csv"), "--chunk-size", "100000"],
            env=_shipyard_env(client), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert sorted(p.name for p in out_dir.iterdir()) == sorted(
            ["scores.csv", alive.name, foreign.name]
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    assert len(pd.read_csv(out_dir / "scores.csv")) == len(big)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_the_users_umask(client, rows, tmp_path, umask):
    rows.head(20).to_parquet(tmp_path / "in.parquet")
    previous = os.umask(umask)
    try:
        result = run(
            client, "iris", "-i", tmp_path / "in.parquet", "-o", tmp_path / "out.parquet",
            "--rejects", tmp_path / "bad.csv",
        )  # fmt: skip
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    for name in ("out.parquet", "bad.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_csv_outputs_quote_only_what_csv_needs(client, rows, tmp_path):
    """Numbers in the rejects file (kept as text) are written as numbers, not "4.7";
    a value holding a comma or a quote is still quoted, so the file reads back."""
    bad = rows.head(6).astype(object)
    bad.loc[1, "sepal_width"] = "abc"
    bad.loc[4, "petal_length"] = 'say "1,5"'
    bad.loc[5, "petal_width"] = None
    bad.insert(0, "visit", [f"v{i}" for i in range(6)])
    bad.to_csv(tmp_path / "in.csv", index=False)
    result = run(
        client, "iris", "-i", tmp_path / "in.csv", "-o", tmp_path / "out.csv",
        "--rejects", tmp_path / "rejects.csv", "--id-column", "visit", "--chunk-size", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "rejects.csv").read_text().splitlines()
    header = "visit,row_number,sepal_length,sepal_width,petal_length,petal_width,reject_reason"
    assert lines[0] == header
    r = bad.loc[1]
    assert lines[1] == (
        f"v1,1,{r.sepal_length},abc,{r.petal_length},{r.petal_width},"
        "sepal_width: 'abc' is not a number; expected a float"
    )
    assert (
        lines[2].startswith(f"v4,4,{bad.loc[4, 'sepal_length']},") and '"say ""1,5"""' in lines[2]
    )
    assert lines[3].startswith("v5,5,") and ",,petal_width: missing value" in lines[3]
    back = pd.read_csv(tmp_path / "rejects.csv")
    assert back["petal_length"].tolist()[1] == 'say "1,5"'
    scores = (tmp_path / "out.csv").read_text().splitlines()
    assert (
        scores[0] == "visit,prediction,proba_setosa,proba_versicolor,proba_virginica,model_version"
    )
    assert re.fullmatch(r"v0,\w+,[-+.e0-9]+,[-+.e0-9]+,[-+.e0-9]+,iris:1", scores[1])


def test_rows_a_model_raises_on_are_rejected_and_the_rest_scored(tmp_path):
    """A forest raises on 1e308 for the whole chunk; batch scoring sets aside only the rows
    that fail (with the column and why) and scores the others, chunk by chunk."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    try:
        client.registry.log_model(forest, "diabetes", sample=X)
        data = X.copy()
        data.loc[[3, 250, 251], "bmi"] = 1e308
        data.loc[400, "s5"] = -1e308
        data.to_csv(tmp_path / "in.csv", index=False)
        result = run(
            client, "diabetes:1", "-i", tmp_path / "in.csv", "-o", tmp_path / "out.csv",
            "--rejects", tmp_path / "rejects.csv", "--chunk-size", "100", "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert (summary["rows_scored"], summary["rows_rejected"]) == (len(X) - 4, 4)
        rejects = pd.read_csv(tmp_path / "rejects.csv")
        assert rejects["row_id"].tolist() == [3, 250, 251, 400]
        reasons = rejects["reject_reason"].tolist()
        assert all(r.startswith("bmi: 1e+308 is outside") for r in reasons[:3]), reasons
        assert reasons[3].startswith("s5: -1e+308 is outside"), reasons
        assert "model refused this row" in reasons[0]
        out = pd.read_csv(tmp_path / "out.csv")
        good = X.drop(index=[3, 250, 251, 400])
        assert out["row_id"].tolist() == good.index.tolist()
        np.testing.assert_allclose(out["prediction"], forest.predict(good))
    finally:
        client.close()


def _log_files(client: Shipyard) -> list[str]:
    """Every file under the prediction log's predictions folder, staged ones included."""
    root = Path(client.prediction_log.store.url) / "predictions"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_bad_output_folder_fails_before_scoring_and_logs_nothing(client, rows, tmp_path):
    rows.to_parquet(tmp_path / "in.parquet")
    before = _log_files(client)
    result = run(
        client, "iris", "-i", tmp_path / "in.parquet", "-o", tmp_path / "no_such_dir" / "x.parquet"
    )
    assert result.exit_code == 1
    message = flat(result.output)
    assert "no_such_dir" in message and "does not exist" in message, message
    assert "Scoring with" not in result.output  # failed before the progress bar started
    assert _log_files(client) == before
    bad_rejects = run(
        client, "iris", "-i", tmp_path / "in.parquet", "-o", tmp_path / "o.parquet",
        "--rejects", tmp_path / "missing" / "r.csv",
    )  # fmt: skip
    assert bad_rejects.exit_code == 1
    assert "--rejects" in flat(bad_rejects.output) and "does not exist" in flat(bad_rejects.output)
    assert not (tmp_path / "o.parquet").exists()
    assert _log_files(client) == before


def test_a_job_failing_mid_way_leaves_the_log_as_it_was(client, rows, tmp_path):
    """Chunks scored (and logged) before a strict failure are not counted anywhere: the
    job's staged log segments are deleted; a successful job's are published."""
    bad = rows.astype(object)
    bad.loc[2_100, "sepal_length"] = "long"  # the fifth chunk of 500
    bad.to_csv(tmp_path / "in.csv", index=False)
    before = _log_files(client)
    window = len(client.prediction_log.read("iris", since="1h"))
    result = run(
        client, "iris", "-i", tmp_path / "in.csv", "-o", tmp_path / "o.csv", "--strict",
        "--chunk-size", "500",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "Row 2100 (0-based)" in flat(result.output)
    assert _log_files(client) == before
    assert len(client.prediction_log.read("iris", since="1h")) == window
    ok = run(client, "iris", "-i", tmp_path / "in.csv", "-o", tmp_path / "o.csv", "--json")
    assert ok.exit_code == 0, ok.output
    assert len(client.prediction_log.read("iris", since="1h")) == window + len(rows) - 1
    assert not [f for f in _log_files(client) if "staged-" in f]


def test_strict_stops_at_the_first_bad_row_whatever_its_kind(tmp_path):
    """A category the model never saw (row 3, refused by the model) comes before a
    missing value (row 10, refused by the signature): --strict names row 3."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = iris_frame()
    X = X.copy()
    X["region"] = np.where(X.sepal_length > 5.8, "north", "south")
    encode = ColumnTransformer(
        [("region", OneHotEncoder(handle_unknown="error"), ["region"])],
        remainder=StandardScaler(),
    )
    pipe = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])
    client = Shipyard(Settings(home=tmp_path / "home", user="tester"))
    try:
        client.registry.log_model(pipe.fit(X, y), "regions", sample=X)
        data = X.head(50).reset_index(drop=True)
        data.loc[3, "region"] = "west"
        data.loc[10, "petal_width"] = np.nan
        data.to_parquet(tmp_path / "in.parquet")
        for extra in ([], ["--chunk-size", "4"]):  # one chunk; the bad rows in two chunks
            result = run(
                client, "regions:1", "-i", tmp_path / "in.parquet", "-o", tmp_path / "o.parquet",
                "--strict", *extra,
            )  # fmt: skip
            assert result.exit_code == 1
            message = flat(result.output)
            assert "Row 3 (0-based)" in message and "'west'" in message, message
            assert "Row 10" not in message
        # Without --strict both rows are set aside, each with its own reason.
        result = run(
            client, "regions:1", "-i", tmp_path / "in.parquet", "-o", tmp_path / "o.parquet",
            "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert [r["row"] for r in json.loads(result.stdout)["rejects"]] == [3, 10]
    finally:
        client.close()
