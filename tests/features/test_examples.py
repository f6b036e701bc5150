"""The driver statistics the demo, the tests and the feature benchmark share."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shipyard.config import Settings
from shipyard.features.examples import definitions_yaml, driver_stats
from shipyard.features.service import FeatureService


def test_hourly_rows_with_gaps_and_reproducible() -> None:
    full = driver_stats(n_drivers=4, hours=10, keep=1.0, start="2026-03-01")
    assert len(full) == 40 and sorted(full["driver_id"].unique()) == [1001, 1002, 1003, 1004]
    assert full["event_timestamp"].min() == pd.Timestamp("2026-03-01", tz="UTC")
    lag = full["created"] - full["event_timestamp"]
    assert lag.min() >= pd.Timedelta(0) and lag.max() < pd.Timedelta(minutes=10)
    sparse = driver_stats(n_drivers=200, hours=30, keep=1 / 3, seed=3)
    assert 0.3 < len(sparse) / 6000 < 0.37
    pd.testing.assert_frame_equal(sparse, driver_stats(n_drivers=200, hours=30, keep=1 / 3, seed=3))


@pytest.mark.parametrize("rating", [False, True])
def test_the_definitions_apply_over_the_generated_file(tmp_path: Path, rating: bool) -> None:
    stats = driver_stats(n_drivers=3, hours=6, rating=rating)
    assert ("rating" in stats) == rating
    stats.to_parquet(tmp_path / "driver_stats.parquet", index=False)
    (tmp_path / "features.yaml").write_text(
        definitions_yaml(tmp_path / "driver_stats.parquet", "2h", rating=rating)
    )
    service = FeatureService.from_settings(Settings(home=tmp_path / "home", user="t"))
    service.apply(tmp_path / "features.yaml")
    view = service.catalog().view("driver_stats").view
    names = [f.name for f in view.features]
    assert names == ["conv_rate", "acc_rate", "avg_daily_trips", *(["rating"] if rating else [])]
