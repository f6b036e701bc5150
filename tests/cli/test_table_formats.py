"""Every table format through the real ``shipyard drift`` and ``shipyard validate data``.

One reader (:mod:`shipyard.tables`) serves both commands, so each format is
written once here and handed to both: drift against a Parquet reference must
find the shifted columns (exit 3), and the unshifted rows must pass iris's
data contract (exit 0). An unreadable table fails both the same way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from services import s3_client
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame

Writer = Callable[[pd.DataFrame, Path, str], str]


def _file(write: Callable[[pd.DataFrame, Path], None], suffix: str) -> Writer:
    def writer(frame: pd.DataFrame, folder: Path, name: str) -> str:
        path = folder / f"{name}{suffix}"
        write(frame, path)
        return str(path)

    return writer


def _sqlite(as_query: bool) -> Writer:
    def writer(frame: pd.DataFrame, folder: Path, name: str) -> str:
        db = folder / "tables.db"
        with sqlite3.connect(db) as conn:
            frame.to_sql(name, conn, index=False, if_exists="replace")
        what = f"SELECT * FROM {name}" if as_query else name
        return f"sqlite:///{db}#{what}"

    return writer


WRITERS: dict[str, Writer] = {
    "csv": _file(lambda f, p: f.to_csv(p, index=False), ".csv"),
    "csv.gz": _file(lambda f, p: f.to_csv(p, index=False), ".csv.gz"),
    "tsv": _file(lambda f, p: f.to_csv(p, index=False, sep="\t"), ".tsv"),
    "parquet": _file(lambda f, p: f.to_parquet(p), ".parquet"),
    "pq": _file(lambda f, p: f.to_parquet(p), ".pq"),
    "jsonl": _file(lambda f, p: f.to_json(p, orient="records", lines=True), ".jsonl"),
    "ndjson": _file(lambda f, p: f.to_json(p, orient="records", lines=True), ".ndjson"),
    "jsonl.gz": _file(lambda f, p: f.to_json(p, orient="records", lines=True), ".jsonl.gz"),
    "json array": _file(lambda f, p: f.to_json(p, orient="records"), ".json"),
    "sql table": _sqlite(as_query=False),
    "sql query": _sqlite(as_query=True),
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris:1 (its contract inferred from the training sample) and a Parquet reference."""
    root = tmp_path_factory.mktemp("formats")
    home = root / "home"
    X, y = iris_frame()
    client = Shipyard(Settings(home=home))
    client.registry.log_model(LogisticRegression(max_iter=500).fit(X, y), "iris", sample=X)
    client.close()
    X.to_parquet(root / "reference.parquet")
    return root


@pytest.fixture(autouse=True)
def _env(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(registry / "home"))


def _shifted() -> pd.DataFrame:
    X, _ = iris_frame()
    return X.assign(sepal_length=X["sepal_length"] + 2.0, sepal_width=X["sepal_width"] + 1.5)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _check_both_commands(reference: str, current: str, same: str) -> None:
    code, out = run("drift", "--reference", reference, "--current", current, "--json", "-")
    assert code == 1, out  # 1: the dataset drifted
    assert '"dataset_drift": true' in out
    # Same rows on both sides, both in the format under test: no drift.
    code, out = run("drift", "--reference", same, "--current", same)
    assert code == 0, out
    code, out = run("validate", "data", "iris:1", same)
    assert code == 0, out
    assert "passed" in out
    # The shift puts half the values in the tails: warnings, a failure with --strict.
    code, out = run("validate", "data", "iris:1", current, "--json", "--strict")
    assert code == 1, out
    assert '"column": "sepal_length"' in out and '"n_rows": 150' in out


@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_format_through_drift_and_validate(kind: str, registry: Path, tmp_path: Path) -> None:
    write = WRITERS[kind]
    X, _ = iris_frame()
    current = write(_shifted(), tmp_path, "current")
    same = write(X, tmp_path, "same")
    _check_both_commands(str(registry / "reference.parquet"), current, same)


@pytest.mark.postgres
def test_a_postgresql_table_and_query(registry: Path, postgres_url: str) -> None:
    X, _ = iris_frame()
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        _shifted().to_sql("current_rows", conn, index=False)
        X.to_sql("same_rows", conn, index=False)
    engine.dispose()
    _check_both_commands(
        str(registry / "reference.parquet"),
        f"{postgres_url}#SELECT * FROM current_rows",
        f"{postgres_url}#same_rows",
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv.gz", ".jsonl"])
def test_s3_tables_through_drift_and_validate(
    suffix: str,
    registry: Path,
    tmp_path: Path,
    s3_endpoint: str,
    s3_bucket: str,
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPYARD_S3_ENDPOINT_URL", s3_endpoint)
    s3, bucket = s3_client(s3_endpoint), s3_bucket
    kind = suffix.lstrip(".")
    write = WRITERS[kind]
    X, _ = iris_frame()
    urls = {}
    for name, frame in (("current", _shifted()), ("same", X)):
        local = Path(write(frame, tmp_path, name))
        s3.upload_file(str(local), bucket, local.name)
        urls[name] = f"s3://{bucket}/{local.name}"
    _check_both_commands(str(registry / "reference.parquet"), urls["current"], urls["same"])
    code, out = run("validate", "data", "iris:1", f"s3://{bucket}/missing{suffix}")
    assert code == 1 and "missing" in out and "Shipyard reads CSV" in out, out


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "rows.xlsx", "cannot tell its format from the extension '.xlsx'"),
        (lambda d: d / "gone.csv", "there is no such file"),
        (lambda d: d / "broken.parquet", "not a readable Parquet file"),
        (lambda d: f"sqlite:///{d / 'tables.db'}#nope", "there is no table 'nope'"),
        (lambda d: f"sqlite:///{d / 'tables.db'}", "needs '#TABLE' or '#SELECT ...'"),
    ],
)
def test_an_unreadable_table_fails_both_commands_the_same_way(
    make: Callable[[Path], Path | str], problem: str, registry: Path, tmp_path: Path
) -> None:
    (tmp_path / "rows.xlsx").write_bytes(b"PK")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with sqlite3.connect(tmp_path / "tables.db") as conn:
        conn.execute("CREATE TABLE other (x REAL)")
    bad = str(make(tmp_path))
    reference = str(registry / "reference.parquet")
    for args in (
        ("drift", "--reference", reference, "--current", bad),
        ("drift", "--reference", bad, "--current", reference),
        ("validate", "data", "iris:1", bad),
    ):
        code, out = run(*args)
        assert code == 1, out
        flat = " ".join(out.split())
        assert "Error: Cannot read" in flat and problem in flat, flat
        # The message lists what works, every time.
        assert "Shipyard reads CSV (.csv, .tsv), Parquet (.parquet, .pq)" in flat, flat
