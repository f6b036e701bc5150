"""score_file end to end: real files, a real registered model, chunk boundaries, rejects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from shipyard.batch import ChunkResult, SqlSource, score_file
from shipyard.errors import InvalidInputError, SchemaError

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
PROBAS = ["proba_setosa", "proba_versicolor", "proba_virginica"]


def read_any(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def write_any(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def assert_scores_match(out: pd.DataFrame, model, rows: pd.DataFrame) -> None:
    """Every output row equals the model's own predict/predict_proba on the same input row."""
    expected = model.predict(rows[FEATURES])
    proba = model.predict_proba(rows[FEATURES])
    assert out["prediction"].tolist() == expected.tolist()
    np.testing.assert_allclose(out[PROBAS].to_numpy(), proba, rtol=1e-12, atol=1e-15)
    assert set(out["model_version"]) == {model.ref}


def test_a_file_larger_than_the_chunk_size_matches_predict_row_by_row(
    iris_model, iris_rows, tmp_path
):
    rows = iris_rows(2_500)
    write_any(rows, tmp_path / "in.parquet")
    seen: list[tuple[int, int]] = []
    summary = score_file(
        iris_model,
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        chunk_size=1_000,
        progress=lambda done, total: seen.append((done, total)),
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["row_id", "prediction", *PROBAS, "model_version"]
    assert out["row_id"].tolist() == list(range(2_500))
    assert_scores_match(out, iris_model, rows)
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (2_500, 2_500, 0)
    assert summary.chunks == 3
    assert summary.model == "iris:1"
    assert summary.rows_per_second > 0
    assert seen == [(0, 2_500), (1_000, 2_500), (2_000, 2_500), (2_500, 2_500)]
    # Each chunk became its own row group: the output streams back in bounded memory too.
    assert pq.ParquetFile(tmp_path / "out.parquet").num_row_groups == 3


@pytest.mark.parametrize(
    ("src", "dst"),
    [("in.csv", "out.csv"), ("in.csv", "out.parquet"), ("in.parquet", "out.csv")],
)
def test_csv_and_parquet_both_ways_keep_ids_and_order(iris_model, iris_rows, tmp_path, src, dst):
    rows = iris_rows(2_500, seed=1)
    # Ids that are not the row number, in an order that is not sorted.
    rows.insert(0, "visit", np.random.default_rng(2).permutation(2_500) * 7 + 11)
    write_any(rows, tmp_path / src)
    summary = score_file(
        iris_model, tmp_path / src, tmp_path / dst, chunk_size=1_000, id_column="visit"
    )
    out = read_any(tmp_path / dst)
    assert list(out.columns) == ["visit", "prediction", *PROBAS, "model_version"]
    # CSV has no types, so ids read from CSV are text: compare as text.
    assert out["visit"].astype(str).tolist() == rows["visit"].astype(str).tolist()
    assert_scores_match(out, iris_model, rows)
    assert summary.rows_scored == 2_500


def test_output_format_can_be_forced(iris_model, iris_rows, tmp_path):
    write_any(iris_rows(10), tmp_path / "in.parquet")
    score_file(iris_model, tmp_path / "in.parquet", tmp_path / "scores.out", output_format="csv")
    assert (tmp_path / "scores.out").read_text().startswith("row_id,prediction,")


def test_bad_rows_go_to_the_rejects_file_with_their_row_numbers(iris_model, iris_rows, tmp_path):
    rows = iris_rows(2_500, seed=3).astype(object)
    # Across chunk boundaries (chunk = 1000): first row, end/start of a chunk, last row.
    rows.loc[0, "sepal_length"] = "abc"
    rows.loc[999, "petal_width"] = None
    rows.loc[1_000, "sepal_width"] = "inf"
    rows.loc[1_500, "petal_length"] = "nan"
    rows.loc[2_499, "sepal_length"] = "1.2.3"
    rows.loc[2_499, "petal_width"] = "-inf"
    rows.to_csv(tmp_path / "in.csv", index=False)
    summary = score_file(
        iris_model,
        tmp_path / "in.csv",
        tmp_path / "out.parquet",
        rejects=tmp_path / "rejects.csv",
        chunk_size=1_000,
    )
    bad = [0, 999, 1_000, 1_500, 2_499]
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (2_500, 2_495, 5)
    assert [r.row for r in summary.rejects] == bad
    rejects = pd.read_csv(tmp_path / "rejects.csv", keep_default_na=False)
    assert list(rejects.columns) == ["row_id", *FEATURES, "reject_reason"]
    assert rejects["row_id"].tolist() == bad
    reasons = dict(zip(rejects["row_id"], rejects["reject_reason"], strict=True))
    assert reasons[0] == "sepal_length: 'abc' is not a number; expected a float"
    assert reasons[999] == "petal_width: missing value; expected a float"
    assert reasons[1_000] == "sepal_width: infinity; expected a finite float"
    assert reasons[1_500] == "petal_length: missing value; expected a float"
    assert reasons[2_499] == (
        "sepal_length: '1.2.3' is not a number; expected a float; "
        "petal_width: infinity; expected a finite float"
    )
    # The raw text of the offending value is kept for whoever fixes the data.
    assert rejects.loc[0, "sepal_length"] == "abc"
    out = pd.read_parquet(tmp_path / "out.parquet")
    good = [i for i in range(2_500) if i not in bad]
    assert out["row_id"].tolist() == good
    clean = pd.read_csv(tmp_path / "in.csv").iloc[good].astype(float)
    assert_scores_match(out, iris_model, clean)


def test_typed_parquet_rejects_nan_and_infinity_and_keeps_ids(iris_model, iris_rows, tmp_path):
    rows = iris_rows(30)
    rows.insert(0, "key", [f"k{i}" for i in range(30)])
    rows.loc[4, "sepal_width"] = np.nan
    rows.loc[17, "petal_length"] = np.inf
    rows.to_parquet(tmp_path / "in.parquet")
    summary = score_file(
        iris_model,
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        rejects=tmp_path / "rejects.parquet",
        id_column="key",
        chunk_size=8,
    )
    assert summary.rows_rejected == 2
    rejects = pd.read_parquet(tmp_path / "rejects.parquet")
    assert list(rejects.columns) == ["key", "row_number", *FEATURES, "reject_reason"]
    assert rejects["key"].tolist() == ["k4", "k17"]
    assert rejects["row_number"].tolist() == [4, 17]
    assert rejects.loc[1, "petal_length"] == "inf"
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert "k4" not in set(out["key"]) and len(out) == 28


def test_strict_mode_stops_at_the_first_bad_row_and_writes_nothing(iris_model, iris_rows, tmp_path):
    rows = iris_rows(2_500).astype(object)
    rows.loc[1_234, "petal_width"] = "wide"
    rows.loc[2_000, "petal_width"] = "wider"
    rows.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(SchemaError) as info:
        score_file(
            iris_model,
            tmp_path / "in.csv",
            tmp_path / "out.csv",
            rejects=tmp_path / "rejects.csv",
            chunk_size=1_000,
            strict=True,
        )
    err = info.value
    assert (err.field, err.expected, err.rows) == ("petal_width", "float", [1_234])
    assert "Row 1234 (0-based)" in str(err) and "'wide' is not a number" in str(err)
    assert "expected a float" in str(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_missing_column_is_fatal_and_named(iris_model, iris_rows, tmp_path):
    rows = iris_rows(10).rename(columns={"petal_width": "petal_wdth"})
    rows.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(SchemaError) as info:
        score_file(iris_model, tmp_path / "in.parquet", tmp_path / "out.parquet")
    message = str(info.value)
    assert info.value.field == "petal_width"
    assert "has no column 'petal_width'" in message
    assert "sepal_length (float), sepal_width (float), petal_length (float)" in message
    assert "Did you mean 'petal_wdth'" in message
    assert not (tmp_path / "out.parquet").exists()


def test_an_unknown_id_column_is_named(iris_model, iris_rows, tmp_path):
    iris_rows(5).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(SchemaError, match="id column 'visit' is not in"):
        score_file(iris_model, tmp_path / "in.parquet", tmp_path / "o.parquet", id_column="visit")


def test_empty_inputs(iris_model, iris_rows, tmp_path):
    # A header and no rows: an empty output that still has every column.
    (tmp_path / "header.csv").write_text(",".join(FEATURES) + "\n")
    summary = score_file(iris_model, tmp_path / "header.csv", tmp_path / "out.parquet")
    assert (summary.rows_read, summary.rows_scored, summary.chunks) == (0, 0, 0)
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert schema.names == ["row_id", "prediction", *PROBAS, "model_version"]
    assert schema.field("prediction").type == pa.string()
    # A Parquet file with zero rows, same.
    iris_rows(3).iloc[:0].to_parquet(tmp_path / "none.parquet")
    summary = score_file(iris_model, tmp_path / "none.parquet", tmp_path / "out.csv")
    assert summary.rows_read == 0
    assert (tmp_path / "out.csv").read_text().startswith("row_id,prediction,")
    # A zero-byte file is not a CSV at all.
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is empty; a CSV input needs a header row"):
        score_file(iris_model, tmp_path / "empty.csv", tmp_path / "out2.csv")
    assert not (tmp_path / "out2.csv").exists()


def test_a_failed_job_never_leaves_a_half_file(iris_model, iris_rows, tmp_path):
    write_any(iris_rows(2_500), tmp_path / "in.parquet")
    (tmp_path / "out.parquet").write_bytes(b"yesterday's scores")

    def fail_on_second_chunk(result: ChunkResult) -> None:
        if result.offset >= 1_000:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        score_file(
            iris_model,
            tmp_path / "in.parquet",
            tmp_path / "out.parquet",
            rejects=tmp_path / "rejects.parquet",
            chunk_size=1_000,
            on_chunk=fail_on_second_chunk,
        )
    # The previous output is untouched and no temporary file is left behind.
    assert (tmp_path / "out.parquet").read_bytes() == b"yesterday's scores"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_the_observer_sees_every_scored_row_once(iris_model, iris_rows, tmp_path):
    rows = iris_rows(2_500).astype(object)
    rows.loc[1_001, "sepal_length"] = None
    rows.to_csv(tmp_path / "in.csv", index=False)
    results: list[ChunkResult] = []
    score_file(
        iris_model,
        tmp_path / "in.csv",
        tmp_path / "o.parquet",
        chunk_size=1_000,
        on_chunk=results.append,
    )
    assert [r.offset for r in results] == [0, 1_000, 2_000]
    assert [r.rejected for r in results] == [0, 1, 0]
    ids = np.concatenate([r.ids for r in results])
    assert ids.tolist() == [i for i in range(2_500) if i != 1_001]
    assert all(len(r.inputs) == len(r.predictions) == len(r.probabilities) for r in results)
    assert results[0].classes == ("setosa", "versicolor", "virginica")
    assert (results[0].model_name, results[0].model_version) == ("iris", 1)


def test_foreground_mode_gives_the_same_file(iris_model, iris_rows, tmp_path):
    write_any(iris_rows(2_500), tmp_path / "in.parquet")
    score_file(iris_model, tmp_path / "in.parquet", tmp_path / "a.parquet", chunk_size=700)
    score_file(
        iris_model,
        tmp_path / "in.parquet",
        tmp_path / "b.parquet",
        chunk_size=700,
        overlap_io=False,
    )
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))


def _sql_table(url: str, rows: pd.DataFrame) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        rows.to_sql("visits", conn, index=False)
    engine.dispose()


def _score_sql_table(iris_model, iris_rows, tmp_path: Path, url: str) -> None:
    rows = iris_rows(2_500, seed=5)
    rows.insert(0, "visit_id", np.arange(2_500) + 100)
    rows.loc[1_700, "sepal_length"] = None  # SQL NULL
    _sql_table(url, rows)
    summary = score_file(
        iris_model,
        SqlSource(url, table="visits"),
        tmp_path / "out.parquet",
        rejects=tmp_path / "rejects.csv",
        id_column="visit_id",
        chunk_size=1_000,
    )
    assert (summary.rows_read, summary.rows_rejected) == (2_500, 1)
    out = pd.read_parquet(tmp_path / "out.parquet")
    keep = rows.drop(index=1_700)
    assert out["visit_id"].tolist() == keep["visit_id"].tolist()
    assert_scores_match(out, iris_model, keep)
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects[["visit_id", "row_number"]].values.tolist() == [[1_800, 1_700]]
    # A query works too; its row count is unknown up front.
    query = SqlSource(url, query="SELECT * FROM visits WHERE visit_id < 600 ORDER BY visit_id")
    assert query.total_rows() is None
    summary = score_file(iris_model, query, tmp_path / "q.csv", chunk_size=128)
    assert summary.rows_scored == 500
    assert pd.read_csv(tmp_path / "q.csv")["row_id"].tolist() == list(range(500))


def test_sql_table_on_sqlite(iris_model, iris_rows, tmp_path):
    _score_sql_table(iris_model, iris_rows, tmp_path, f"sqlite:///{tmp_path / 'rows.db'}")


@pytest.mark.postgres
def test_sql_table_on_postgresql(iris_model, iris_rows, tmp_path, postgres_url):
    _score_sql_table(iris_model, iris_rows, tmp_path, postgres_url)


def test_an_unknown_sql_table_is_named(iris_model, tmp_path):
    url = f"sqlite:///{tmp_path / 'rows.db'}"
    _sql_table(url, pd.DataFrame({"x": [1.0]}))
    with pytest.raises(Exception, match="no table 'nope'"):
        score_file(iris_model, SqlSource(url, table="nope"), tmp_path / "o.csv")


def test_a_regressor_gets_a_prediction_and_no_probabilities(iris_regressor, iris_rows, tmp_path):
    rows = iris_rows(1_500).drop(columns="petal_width")
    rows.to_parquet(tmp_path / "in.parquet")
    score_file(iris_regressor, tmp_path / "in.parquet", tmp_path / "out.csv", chunk_size=1_000)
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["row_id", "prediction", "model_version"]
    np.testing.assert_allclose(out["prediction"], iris_regressor.predict(rows), rtol=1e-12)


def test_rows_the_model_itself_refuses_are_rejected_not_fatal(colors_model, tmp_path):
    rows = pd.DataFrame({"color": ["red", "green"] * 15, "size": np.linspace(-1, 1, 30)})
    rows.loc[[3, 17], "color"] = "blue"
    rows.loc[20, "color"] = "teal"
    rows.to_csv(tmp_path / "in.csv", index=False)
    summary = score_file(
        colors_model,
        tmp_path / "in.csv",
        tmp_path / "out.parquet",
        rejects=tmp_path / "rejects.csv",
        chunk_size=12,
    )
    assert [r.row for r in summary.rejects] == [3, 17, 20]
    assert summary.rejects[2].reason == (
        "color: 'teal' is a value the model never saw and cannot handle; "
        "expected one of ['green', 'red']"
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    good = rows.drop(index=[3, 17, 20])
    assert out["row_id"].tolist() == good.index.tolist()
    assert out["prediction"].tolist() == colors_model.predict(good).tolist()
    with pytest.raises(SchemaError, match=r"Row 3 \(0-based\).*'blue' is a value") as info:
        score_file(
            colors_model, tmp_path / "in.csv", tmp_path / "o.csv", chunk_size=12, strict=True
        )
    assert (info.value.rows, info.value.field) == ([3], "color")
    assert not (tmp_path / "o.csv").exists()


def test_a_chunk_with_no_good_row_is_skipped(iris_model, iris_rows, tmp_path):
    rows = iris_rows(30)
    rows.loc[10:19, "sepal_length"] = np.nan
    rows.insert(0, "key", np.arange(30) * 2)
    rows.to_parquet(tmp_path / "in.parquet")
    results: list[ChunkResult] = []
    summary = score_file(
        iris_model,
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        id_column="key",
        chunk_size=10,
        on_chunk=results.append,
    )
    assert (summary.rows_scored, summary.rows_rejected) == (20, 10)
    assert [r.offset for r in results] == [0, 20]
    assert pd.read_parquet(tmp_path / "out.parquet")["key"].tolist() == [
        *range(0, 20, 2),
        *range(40, 60, 2),
    ]


def test_chunks_predicted_at_once_are_written_logged_and_rejected_in_input_order(
    iris_model, iris_rows, tmp_path
):
    """Three chunks in flight give the very files one at a time gives: rows, rejects
    and the observer's chunks in input order, whichever prediction finishes first."""
    rows = iris_rows(3_000, seed=9).astype(object)
    for row in (5, 1_234, 2_999):
        rows.loc[row, "petal_length"] = "long"
    rows.to_csv(tmp_path / "in.csv", index=False)
    seen: dict[int, list[ChunkResult]] = {1: [], 3: []}
    for threads in (1, 3):
        summary = score_file(
            iris_model,
            tmp_path / "in.csv",
            tmp_path / f"out-{threads}.parquet",
            rejects=tmp_path / f"rejects-{threads}.csv",
            chunk_size=128,
            on_chunk=seen[threads].append,
            predict_threads=threads,
        )
        assert (summary.rows_scored, summary.rows_rejected) == (2_997, 3)
        assert [r.row for r in summary.rejects] == [5, 1_234, 2_999]
    one, three = (pq.read_table(tmp_path / f"out-{n}.parquet") for n in (1, 3))
    assert three.equals(one)
    rejects = (tmp_path / "rejects-3.csv").read_text()
    assert rejects == (tmp_path / "rejects-1.csv").read_text()
    assert [r.offset for r in seen[3]] == list(range(0, 3_000, 128))
    assert np.concatenate([r.ids for r in seen[3]]).tolist() == one["row_id"].to_pylist()


def test_predict_threads_must_be_positive(iris_model, iris_rows, tmp_path):
    write_any(iris_rows(10), tmp_path / "in.parquet")
    with pytest.raises(InvalidInputError, match="predict_threads"):
        score_file(iris_model, tmp_path / "in.parquet", tmp_path / "o.parquet", predict_threads=0)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


class _RecordsBlasThreads:
    """A model that notes the BLAS pools' sizes each time it predicts."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.seen: list[list[int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def predict_with_proba(self, data: Any) -> Any:
        self.seen.append(_blas_threads())
        return self._model.predict_with_proba(data)


def test_chunks_predicted_at_once_run_the_model_on_one_blas_thread_each(
    iris_model, iris_rows, tmp_path
):
    """Two chunks in flight each with a BLAS pool of one thread per core oversubscribed
    the cores; while they predict the pools have one thread, afterwards their own again."""
    from threadpoolctl import threadpool_limits

    write_any(iris_rows(1_000), tmp_path / "in.parquet")
    models = {1: _RecordsBlasThreads(iris_model), 2: _RecordsBlasThreads(iris_model)}
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and set(before) == {2}
        for threads, model in models.items():
            score_file(
                model,
                tmp_path / "in.parquet",
                tmp_path / f"out-{threads}.parquet",
                chunk_size=250,
                predict_threads=threads,
            )
            assert _blas_threads() == before
    assert models[1].seen == [before] * 4  # one chunk at a time: the model keeps its pool
    assert models[2].seen == [[1] * len(before)] * 4
    one, two = (pq.read_table(tmp_path / f"out-{n}.parquet") for n in (1, 2))
    assert two.equals(one)
