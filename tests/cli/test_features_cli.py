"""``shipyard features ...`` through the real CLI app (Typer's CliRunner), on SQLite and on
PostgreSQL + Redis (the settings come from SHIPYARD_* variables, as a user sets them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from driver_data import driver_stats, entity_rows, write_definitions

runner = CliRunner()
REFS = "driver_stats:conv_rate,driver_stats:avg_daily_trips"


@pytest.fixture
def env(feature_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SHIPYARD_HOME", str(feature_settings.home))
    monkeypatch.setenv("SHIPYARD_USER", "tester")
    if feature_settings.db:
        monkeypatch.setenv("SHIPYARD_DB", feature_settings.db)
    if feature_settings.online_store:
        monkeypatch.setenv("SHIPYARD_ONLINE_STORE", feature_settings.online_store)
    return tmp_path


def run(*args: str) -> object:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_apply_list_show_and_training_set(env: Path) -> None:
    stats = driver_stats(n_drivers=5, hours=24)
    path = write_definitions(env / "repo", stats, ttl="2h")
    out = run("features", "apply", str(path))
    assert out.exit_code == 0, out.output
    assert "driver_stats" in out.output and "v1" in out.output
    assert "No changes" in run("features", "apply", str(path)).output

    listed = json.loads(run("features", "list", "--json").output)
    assert listed["views"]["driver_stats"]["version"] == 1
    assert listed["views"]["driver_stats"]["ttl"] == 7200
    shown = run("features", "show", "driver_stats")
    assert shown.exit_code == 0
    assert "avg_daily_trips" in shown.output and "int64" in shown.output
    assert "ttl 2h" in shown.output

    entities = entity_rows(stats, 200).rename(columns={"event_timestamp": "at"})
    entities.to_parquet(env / "entities.parquet", index=False)
    output = env / "out" / "train.parquet"
    out = run(
        "features",
        "training-set",
        "--entities",
        str(env / "entities.parquet"),
        "--features",
        REFS,
        "--output",
        str(output),
        "--timestamp-column",
        "at",
    )
    assert out.exit_code == 0, out.output
    assert "Wrote 200 rows" in out.output
    written = pd.read_parquet(output)
    assert list(written.columns) == ["driver_id", "at", "label", "conv_rate", "avg_daily_trips"]
    assert written["driver_id"].tolist() == entities["driver_id"].tolist()
    assert 0 < written["conv_rate"].notna().sum() < 200

    csv = env / "train.csv"
    out = run(
        "features",
        "training-set",
        "--entities",
        str(env / "entities.parquet"),
        "--features",
        REFS,
        "-o",
        str(csv),
        "--timestamp-column",
        "at",
        "--full-feature-names",
    )
    assert out.exit_code == 0, out.output
    assert "driver_stats__conv_rate" in pd.read_csv(csv).columns


def test_materialize_and_get(env: Path) -> None:
    stats = driver_stats(n_drivers=4, hours=24)
    # No TTL: the 2026-01-01 values are not stale whenever the test runs.
    run("features", "apply", str(write_definitions(env / "repo", stats, ttl="0")))
    out = run(
        "features",
        "materialize",
        "--start",
        "2025-12-31T00:00",
        "--end",
        "2026-01-01T10:00",
        "--json",
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["written"] == 4
    upto = stats[stats["event_timestamp"] <= pd.Timestamp("2026-01-01T10:00", tz="UTC")]
    latest = upto.sort_values(["event_timestamp", "created"]).groupby("driver_id").tail(1)
    first = latest.iloc[0]
    got = run(
        "features",
        "get",
        "driver_stats",
        "--key",
        f"driver_id={first['driver_id']}",
        "--key",
        "driver_id=99",
        "--json",
    )
    assert got.exit_code == 0, got.output
    rows = json.loads(got.output)
    assert rows[0]["avg_daily_trips"] == first["avg_daily_trips"]
    assert rows[1]["avg_daily_trips"] is None
    # The int64 key comes back as the number it is in the source, not as text.
    assert rows[0]["driver_id"] == int(first["driver_id"]) and rows[1]["driver_id"] == 99
    bad = runner.invoke(app, ["features", "get", "driver_stats", "--key", "driver_id=abc"])
    assert bad.exit_code == 1 and "'driver_id' is a key of type int64, got 'abc'" in bad.output
    table = run(
        "features",
        "get",
        "driver_stats:avg_daily_trips",
        "--key",
        f"driver_id={first['driver_id']}",
    )
    assert str(first["avg_daily_trips"]) in table.output

    out = run("features", "materialize", "--incremental", "--end", "2026-01-02T00:00")
    assert out.exit_code == 0, out.output
    assert "Materialized into" in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["features", "get", "driver_stats", "--key", "1001"], "must read column=value"),
        (["features", "get", "ghost", "--key", "driver_id=1"], "No feature view named 'ghost'"),
        (["features", "get", "driver_stats", "--key", "driver=1"], "no 'driver_id'"),
        (["features", "show", "ghost"], "No feature view named 'ghost'"),
        (["features", "materialize", "--start", "yesterday"], "--start 'yesterday' is not a time"),
        (
            [
                "features",
                "training-set",
                "--entities",
                "ENT",
                "--features",
                "driver_stats:nope",
                "--output",
                "o.parquet",
            ],
            "has no feature 'nope'",
        ),
        (
            [
                "features",
                "training-set",
                "--entities",
                "ENT",
                "--features",
                REFS,
                "--output",
                "o.xlsx",
            ],
            "write a .parquet, .csv or .jsonl",
        ),
        (
            [
                "features",
                "training-set",
                "--entities",
                "ENT",
                "--features",
                REFS,
                "--output",
                "o.parquet",
                "--timestamp-column",
                "when",
            ],
            "no column 'when'",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(env: Path, args: list[str], message: str) -> None:
    stats = driver_stats(n_drivers=2, hours=6)
    run("features", "apply", str(write_definitions(env / "repo", stats)))
    entity_rows(stats, 5).to_parquet(env / "ent.parquet", index=False)
    args = [str(env / "ent.parquet") if a == "ENT" else a for a in args]
    args = [str(env / a) if a.startswith("o.") else a for a in args]
    out = runner.invoke(app, args)
    assert out.exit_code == 1, out.output
    assert message in out.output
    assert "Traceback" not in out.output


def test_breaking_apply_needs_force_and_reason(env: Path) -> None:
    from shipyard._client import Shipyard

    stats = driver_stats(n_drivers=2, hours=6)
    path = write_definitions(env / "repo", stats)
    run("features", "apply", str(path))
    client = Shipyard(Settings())
    client.feature_store.add_consumers("eta", 3, {"driver_stats": 1})
    client.close()
    path.write_text(path.read_text().replace("dtype: int64", "dtype: float64"))
    refused = runner.invoke(app, ["features", "apply", str(path)])
    assert refused.exit_code == 1
    assert "retyped int64 -> float64" in refused.output and "eta:3" in refused.output
    no_reason = runner.invoke(app, ["features", "apply", str(path), "--force"])
    assert no_reason.exit_code == 1 and "--force needs --reason" in no_reason.output
    dry = run("features", "apply", str(path), "--dry-run", "--force", "--reason", "r")
    assert "Would apply" in dry.output
    shown = json.loads(run("features", "show", "driver_stats", "--json").output)
    assert len(shown["versions"]) == 1  # the dry run stored nothing
    forced = run("features", "apply", str(path), "--force", "--reason", "eta retrains")
    assert forced.exit_code == 0, forced.output
    assert "v2" in forced.output
    audit = run("audit", "--json")
    assert "eta retrains" in audit.output


@pytest.mark.parametrize(
    ("column", "declared", "expected"),
    [
        ("int64", "float32", "int64 (or float64)"),  # BIGINT: float32 keeps 24 bits
        ("int64", "int32", "int64"),  # BIGINT overflows int32
    ],
)
def test_apply_refuses_a_lossy_integer_dtype_naming_feature_and_column(
    env: Path, column: str, declared: str, expected: str
) -> None:
    stats = driver_stats(n_drivers=2, hours=4)
    stats["avg_daily_trips"] = stats["avg_daily_trips"].astype(column) + 2**40
    path = write_definitions(env / "repo", stats)
    text = path.read_text().replace(
        "{name: avg_daily_trips, dtype: int64}", f"{{name: avg_daily_trips, dtype: {declared}}}"
    )
    path.write_text(text)
    out = run("features", "apply", str(path))
    assert out.exit_code == 1, out.output
    message = " ".join(out.output.split())
    assert (
        f"feature 'avg_daily_trips' is declared {declared} but source column "
        f"'avg_daily_trips' is BIGINT" in message
    ), message
    assert f"declare {expected}" in message and "Traceback" not in message
    assert json.loads(run("features", "list", "--json").output)["views"] == {}


@pytest.mark.parametrize("unit", ["ns", "ms", "s"])
def test_source_times_in_any_unit_materialize_and_join(env: Path, unit: str) -> None:
    """pandas writes UTC times as ``datetime64[ns, UTC]`` (DuckDB: TIMESTAMPTZ_NS); other
    units too must read as the same instants, offline and online."""
    from driver_data import assert_matches, reference

    stats = driver_stats(n_drivers=4, hours=12)
    for column in ("event_timestamp", "created"):
        stats[column] = stats[column].astype(f"datetime64[{unit}, UTC]")
    assert str(stats["event_timestamp"].dtype) == f"datetime64[{unit}, UTC]"
    # No TTL: the materialized values are not stale whenever the test runs.
    run("features", "apply", str(write_definitions(env / "repo", stats, ttl="0")))

    entities = entity_rows(stats, 100)
    entities.to_parquet(env / "entities.parquet", index=False)
    output = env / "train.parquet"
    out = run(
        "features",
        "training-set",
        "--entities",
        str(env / "entities.parquet"),
        "--features",
        REFS,
        "--output",
        str(output),
    )
    assert out.exit_code == 0, out.output
    features = ["conv_rate", "avg_daily_trips"]
    expected = reference(entities, stats, keys=["driver_id"], features=features, ttl=None)
    assert_matches(pd.read_parquet(output), expected, features)

    out = run("features", "materialize", "--end", "2026-01-01T06:00", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["written"] == 4
    upto = stats[stats["event_timestamp"] <= pd.Timestamp("2026-01-01T06:00", tz="UTC")]
    latest = upto.sort_values(["event_timestamp", "created"]).groupby("driver_id").tail(1)
    first = latest.iloc[0]
    got = run(
        "features", "get", "driver_stats", "--key", f"driver_id={first['driver_id']}", "--json"
    )
    assert got.exit_code == 0, got.output
    row = json.loads(got.output)[0]
    assert row["avg_daily_trips"] == first["avg_daily_trips"]
    assert row["conv_rate"] == pytest.approx(first["conv_rate"], rel=1e-6)
