"""Applying definitions: schema checks, one version per change, audit, the consumer guard.

Runs on SQLite and on PostgreSQL (``backend_settings``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from driver_data import definitions_yaml, driver_stats, entity_rows, write_definitions

from services import s3_client
from shipyard._client import Shipyard
from shipyard.config import Settings
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError


@pytest.fixture
def client(backend_settings: Settings) -> Shipyard:
    c = Shipyard(backend_settings)
    yield c
    c.close()


def test_apply_versions_only_what_changed_and_audits_it(client: Shipyard, tmp_path: Path) -> None:
    stats = driver_stats(n_drivers=3, hours=6)
    path = write_definitions(tmp_path, stats, ttl="2h")
    first = client.features.apply(path)
    assert [(c.kind, c.name, c.new_version) for c in first.changes] == [
        ("entity", "driver", 1),
        ("source", "driver_stats_source", 1),
        ("view", "driver_stats", 1),
    ]
    assert client.features.apply(path).changes == []  # idempotent
    path.write_text(definitions_yaml("driver_stats.parquet", "3h"))
    second = client.features.apply(path)
    assert [(c.name, c.old_version, c.new_version) for c in second.changes] == [
        ("driver_stats", 1, 2)
    ]
    assert client.features.catalog().view("driver_stats").view.ttl == 3 * 3600
    actions = [(e.action, e.subject, e.to_value) for e in client.audit.log()]
    assert ("features.apply_view", "driver_stats", "2") in actions
    assert ("features.apply_view", "driver_stats", "1") in actions


def test_a_view_that_does_not_match_its_source_is_refused(client: Shipyard, tmp_path: Path) -> None:
    stats = driver_stats(n_drivers=2, hours=4)
    path = write_definitions(tmp_path, stats.drop(columns=["acc_rate"]))
    with pytest.raises(InvalidInputError, match="feature 'acc_rate' is not a column"):
        client.features.apply(path)
    write_definitions(tmp_path, stats.assign(avg_daily_trips=stats["avg_daily_trips"] * 0.5))
    with pytest.raises(InvalidInputError, match="declared int64 but the column is DOUBLE"):
        client.features.apply(path)
    write_definitions(tmp_path, stats.assign(created="yesterday"))
    with pytest.raises(InvalidInputError, match="created_timestamp_column 'created' is VARCHAR"):
        client.features.apply(path)
    assert client.features.catalog().views == {}  # nothing half-applied


def test_csv_and_folder_sources(client: Shipyard, tmp_path: Path) -> None:
    stats = driver_stats(n_drivers=3, hours=6)
    root = tmp_path / "repo"
    (root / "parts").mkdir(parents=True)
    stats.iloc[:20].to_parquet(root / "parts" / "a.parquet", index=False)
    stats.iloc[20:].to_parquet(root / "parts" / "b.parquet", index=False)
    (root / "f.yaml").write_text(definitions_yaml("parts", "1d"))
    client.features.apply(root / "f.yaml")
    entities = entity_rows(stats, 40)
    from_folder = client.features.training_set(entities, "driver_stats:avg_daily_trips")
    stats.to_csv(root / "stats.csv", index=False)
    (root / "f.yaml").write_text(definitions_yaml("stats.csv", "1d"))
    client.features.apply(root / "f.yaml")
    from_csv = client.features.training_set(entities, "driver_stats:avg_daily_trips")
    pd.testing.assert_series_equal(from_folder["avg_daily_trips"], from_csv["avg_daily_trips"])
    assert from_csv["avg_daily_trips"].notna().sum() > 5


def test_sql_source(client: Shipyard, tmp_path: Path) -> None:
    import sqlalchemy as sa

    stats = driver_stats(n_drivers=3, hours=6)
    url = f"sqlite:///{tmp_path / 'src.db'}"
    engine = sa.create_engine(url)
    stats.to_sql("stats", engine, index=False)
    engine.dispose()
    parquet = write_definitions(tmp_path / "pq", stats, ttl="1d")
    client.features.apply(parquet)
    entities = entity_rows(stats, 40)
    expected = client.features.training_set(entities, "driver_stats:avg_daily_trips")
    (tmp_path / "sql.yaml").write_text(definitions_yaml(f"'{url}#stats'", "1d"))
    client.features.apply(tmp_path / "sql.yaml")
    got = client.features.training_set(entities, "driver_stats:avg_daily_trips")
    pd.testing.assert_series_equal(got["avg_daily_trips"], expected["avg_daily_trips"])


def test_breaking_change_to_a_view_a_model_uses_needs_force_and_reason(
    client: Shipyard, tmp_path: Path
) -> None:
    stats = driver_stats(n_drivers=3, hours=6)
    path = write_definitions(tmp_path, stats)
    client.features.apply(path)
    client.feature_store.add_consumers("eta", 1, {"driver_stats": 1})
    path.write_text(path.read_text().replace("      - {name: acc_rate, dtype: float64}\n", ""))
    with pytest.raises(ConflictError, match=r"feature 'acc_rate' removed.*used by eta:1"):
        client.features.apply(path)
    with pytest.raises(InvalidInputError, match="--force needs --reason"):
        client.features.apply(path, force=True)
    result = client.features.apply(path, force=True, reason="eta retrains tonight")
    assert result.changes[0].breaking == ["feature 'acc_rate' removed"]
    entry = next(
        e for e in client.audit.log() if e.action == "features.apply_view" and e.to_value == "2"
    )
    assert entry.reason == "eta retrains tonight"
    assert entry.details["consumers"] == ["eta:1"]
    # A change that removes nothing is not breaking: no force needed.
    path.write_text(path.read_text().replace("ttl: 2h", "ttl: 4h"))
    assert client.features.apply(path).changes[0].breaking == []


def test_unknown_view(client: Shipyard) -> None:
    with pytest.raises(NotFoundError, match="No feature view named 'ghost'"):
        client.features.catalog().view("ghost")


def test_s3_source(tmp_path: Path, s3_endpoint: str, s3_bucket: str, aws_env: None) -> None:
    s3 = s3_client(s3_endpoint)
    stats = driver_stats(n_drivers=3, hours=6)
    local = write_definitions(tmp_path / "local", stats, ttl="1d")
    s3.upload_file(str(tmp_path / "local" / "driver_stats.parquet"), s3_bucket, "stats.parquet")
    (tmp_path / "s3.yaml").write_text(definitions_yaml(f"s3://{s3_bucket}/stats.parquet", "1d"))
    client = Shipyard(Settings(home=tmp_path / "home", user="t", s3_endpoint_url=s3_endpoint))
    entities = entity_rows(stats, 40)
    client.features.apply(local)
    expected = client.features.training_set(entities, "driver_stats:avg_daily_trips")
    client.features.apply(tmp_path / "s3.yaml")
    assert client.features.catalog().view("driver_stats").source.path.startswith("s3://")
    got = client.features.training_set(entities, "driver_stats:avg_daily_trips")
    pd.testing.assert_series_equal(got["avg_daily_trips"], expected["avg_daily_trips"])
    client.close()
