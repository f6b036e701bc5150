"""Training entry points and data sources: files, folders, tables, fingerprints, time ranges."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest

from shipyard.errors import ConfigError, InvalidInputError, TableError
from shipyard.loop.config import DataSource
from shipyard.loop.examples import iris_frame, train_iris
from shipyard.loop.pipelines import (
    TrainResult,
    count_rows,
    read_source,
    resolve_entry_point,
    run_pipeline,
    snapshot,
)
from shipyard.tracking.fingerprint import fingerprint


def test_resolve_entry_point_errors_name_what_is_missing() -> None:
    assert resolve_entry_point("shipyard.loop.examples:train_iris") is train_iris
    with pytest.raises(ConfigError, match="Cannot import module 'no_such_mod'"):
        resolve_entry_point("no_such_mod:train")
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        resolve_entry_point("shipyard.loop.examples:nope")
    with pytest.raises(ConfigError, match=r"is not 'package\.module:function'"):
        resolve_entry_point("shipyard.loop.examples")


def _module(tmp_path: Path, body: str) -> str:
    name = f"pipe_{abs(hash(body)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    return name


def test_run_pipeline_accepts_a_tuple_or_a_train_result(tmp_path: Path) -> None:
    data = iris_frame()
    result = run_pipeline("shipyard.loop.examples:train_iris", data, {"cv": 2})
    assert isinstance(result, TrainResult) and result.metrics["train_rows"] == 150.0
    assert result.model.predict(data.drop(columns=["species"]).head(3)).shape == (3,)
    name = _module(
        tmp_path,
        "from shipyard.loop.pipelines import TrainResult\n"
        "from sklearn.dummy import DummyClassifier\n"
        "def ok(data, params):\n"
        "    m = DummyClassifier().fit(data[['sepal_length']], data['species'])\n"
        "    return TrainResult(m, {'accuracy': params['a']})\n"
        "def bad(data, params):\n    return 'model'\n"
        "def no_predict(data, params):\n    return object(), {}\n"
        "def text_metric(data, params):\n"
        "    m = DummyClassifier().fit(data[['sepal_length']], data['species'])\n"
        "    return m, {'accuracy': 'high'}\n",
    )
    assert run_pipeline(f"{name}:ok", data, {"a": 0.5}).metrics == {"accuracy": 0.5}
    with pytest.raises(InvalidInputError, match="returned str; expected \\(model, metrics\\)"):
        run_pipeline(f"{name}:bad", data, {})
    with pytest.raises(InvalidInputError, match="has no predict method"):
        run_pipeline(f"{name}:no_predict", data, {})
    with pytest.raises(InvalidInputError, match="metric 'accuracy' = 'high'"):
        run_pipeline(f"{name}:text_metric", data, {})


def test_snapshot_pins_content_and_time_range(tmp_path: Path) -> None:
    frame = iris_frame().assign(ts=pd.date_range("2026-01-01", periods=150, freq="h", tz="UTC"))
    path = tmp_path / "iris.parquet"
    frame.to_parquet(path)
    snap = snapshot(DataSource(path=str(path), time_column="ts"))
    assert snap.n_rows == 150
    assert snap.lineage["content_hash"] == fingerprint(pd.read_parquet(path)).content_hash
    assert snap.lineage["source"] == str(path)
    assert snap.lineage["time_range"] == {
        "column": "ts",
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-07T05:00:00+00:00",
    }
    with pytest.raises(InvalidInputError, match="has no time column 'when'"):
        snapshot(DataSource(path=str(path), time_column="when"))
    empty = tmp_path / "empty.csv"
    iris_frame().head(0).to_csv(empty, index=False)
    with pytest.raises(InvalidInputError, match="has no rows"):
        snapshot(DataSource(path=str(empty)))


def test_folders_tables_and_row_counts(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    (folder / "2026").mkdir(parents=True)
    iris_frame(rows=40, seed=1).to_parquet(folder / "a.parquet")
    iris_frame(rows=30, seed=2).to_csv(folder / "2026" / "b.csv", index=False)
    (folder / "notes.txt").write_text("ignored")
    source = DataSource(path=str(folder))
    assert len(read_source(source)) == count_rows(source) == 70
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:
        iris_frame().to_sql("iris", conn, index=False)
    table = DataSource(table="iris", url=f"sqlite:///{db}")
    assert len(read_source(table)) == count_rows(table) == 150
    with pytest.raises(TableError, match="Cannot read the table 'nope' in sqlite"):
        read_source(DataSource(table="nope", url=f"sqlite:///{db}"))
    with pytest.raises(InvalidInputError, match="does not exist"):
        count_rows(DataSource(path=str(tmp_path / "missing.csv")))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InvalidInputError, match="holds no"):
        read_source(DataSource(path=str(tmp_path / "nothing")))


def test_train_iris_reads_paths_and_checks_columns(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    iris_frame().to_csv(path, index=False)
    model, metrics = train_iris(path, {"estimator": "random_forest", "n_estimators": 10})
    assert metrics["accuracy"] > 0.85 and model.n_estimators == 10
    _, bad = train_iris(iris_frame(), {"estimator": "dummy", "cv": 2})
    assert bad["accuracy"] < 0.5
    with pytest.raises(InvalidInputError, match="no target column 'label'"):
        train_iris(iris_frame(), {"target": "label"})
    with pytest.raises(InvalidInputError, match="lacks feature columns \\['petal_width'\\]"):
        train_iris(iris_frame().drop(columns=["petal_width"]), {})
