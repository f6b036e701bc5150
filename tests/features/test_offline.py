"""Point-in-time training sets against a brute-force reference, on edge cases and random data."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from driver_data import assert_matches, driver_stats, entity_rows, reference, write_definitions

from shipyard.config import Settings
from shipyard.errors import InvalidInputError
from shipyard.features.service import FeatureService

FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips"]
REFS = [f"driver_stats:{f}" for f in FEATURES]
T0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")


def _service(tmp_path: Path) -> FeatureService:
    return FeatureService.from_settings(Settings(home=tmp_path / "home", user="tester"))


def _applied(tmp_path: Path, stats: pd.DataFrame, ttl: str = "2h") -> FeatureService:
    service = _service(tmp_path)
    service.apply(write_definitions(tmp_path / "repo", stats, ttl=ttl))
    return service


def _rows(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "driver_id",
            "event_timestamp",
            "created",
            "conv_rate",
            "acc_rate",
            "avg_daily_trips",
        ],
    ).astype({"conv_rate": "float32", "avg_daily_trips": "int64"})


def test_random_entities_match_the_reference_in_input_order(tmp_path: Path) -> None:
    stats = driver_stats(n_drivers=15, hours=60)
    service = _applied(tmp_path, stats, ttl="3h")
    entities = entity_rows(stats, 600)
    result = service.training_set(entities, REFS)
    # Every entity row once, in input order, its own columns untouched.
    pd.testing.assert_frame_equal(result[entities.columns], entities)
    expected = reference(
        entities, stats, keys=["driver_id"], features=FEATURES, ttl=timedelta(hours=3)
    )
    assert_matches(result, expected, FEATURES)
    # The data is not trivial: some rows found values, some (unknown, stale) did not.
    found = result["conv_rate"].notna()
    assert 0.3 < found.mean() < 1.0
    assert result["avg_daily_trips"].dtype == "Int64"
    assert result["conv_rate"].dtype == "float32"


def test_exact_time_match_and_ttl_boundary_are_inclusive(tmp_path: Path) -> None:
    stats = _rows(
        (1001, T0, T0, 0.5, 0.1, 7),
        (1001, T0 + pd.Timedelta(hours=5), T0 + pd.Timedelta(hours=5), 0.25, 0.2, 9),
    )
    service = _applied(tmp_path, stats, ttl="2h")
    entities = pd.DataFrame(
        {
            "driver_id": [1001, 1001, 1001, 1001, 1001],
            "event_timestamp": [
                T0,  # exact match
                T0 + pd.Timedelta(hours=2),  # exactly the TTL: still valid
                T0 + pd.Timedelta(hours=2, microseconds=1),  # just past it: null
                T0 - pd.Timedelta(seconds=1),  # before any row: null
                T0 + pd.Timedelta(hours=5),  # exact match on the second row
            ],
        }
    )
    result = service.training_set(entities, REFS)
    assert result["avg_daily_trips"].tolist()[:2] == [7, 7]
    assert result["avg_daily_trips"].isna().tolist() == [False, False, True, True, False]
    assert result["avg_daily_trips"].iloc[4] == 9
    assert_matches(
        result,
        reference(entities, stats, keys=["driver_id"], features=FEATURES, ttl=timedelta(hours=2)),
        FEATURES,
    )


def test_ties_on_event_time_go_to_the_latest_created(tmp_path: Path) -> None:
    stats = _rows(
        (1001, T0, T0 + pd.Timedelta(minutes=5), 0.1, 0.1, 1),
        (1001, T0, T0 + pd.Timedelta(minutes=9), 0.2, 0.2, 2),  # created last: wins
        (1001, T0, T0 + pd.Timedelta(minutes=1), 0.3, 0.3, 3),
        (1001, T0 - pd.Timedelta(minutes=1), T0 + pd.Timedelta(hours=1), 0.4, 0.4, 4),
    )
    service = _applied(tmp_path, stats, ttl="1d")
    entities = pd.DataFrame({"driver_id": [1001], "event_timestamp": [T0 + pd.Timedelta(1, "h")]})
    result = service.training_set(entities, REFS)
    # The latest event time wins even against a row created later; then created breaks the tie.
    assert result["avg_daily_trips"].tolist() == [2]


def test_unknown_keys_and_null_times_give_nulls_and_keep_every_row(tmp_path: Path) -> None:
    stats = driver_stats(n_drivers=3, hours=10)
    service = _applied(tmp_path, stats, ttl="0")  # no TTL
    entities = pd.DataFrame(
        {
            "driver_id": [424242, 1001, 1001, 1002],
            "event_timestamp": [T0, None, pd.Timestamp("2027-01-01", tz="UTC"), T0],
            "label": [1, 2, 3, 4],
        }
    )
    result = service.training_set(entities, REFS)
    assert result["label"].tolist() == [1, 2, 3, 4]
    assert result["conv_rate"].isna().tolist()[:2] == [True, True]
    # No TTL: a value from two months before still counts.
    assert result["conv_rate"].notna().tolist()[2:] == [True, True]


def test_naive_timestamps_are_utc_and_aware_ones_are_converted(tmp_path: Path) -> None:
    stats = _rows(
        (1001, T0, T0, 0.5, 0.5, 1),
        (1001, T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=1), 0.6, 0.6, 2),
    )
    service = _applied(tmp_path, stats, ttl="1d")
    at = T0 + pd.Timedelta(minutes=30)
    naive = pd.DataFrame({"driver_id": [1001], "event_timestamp": [at.tz_localize(None)]})
    # 01:30 in Paris (UTC+1 in March) is 00:30 UTC: the first row, not the second.
    paris = pd.DataFrame({"driver_id": [1001], "event_timestamp": [at.tz_convert("Europe/Paris")]})
    text = pd.DataFrame({"driver_id": [1001], "event_timestamp": ["2026-03-01T00:30:00"]})
    for frame in (naive, paris, text):
        assert service.training_set(frame, REFS)["avg_daily_trips"].tolist() == [1]


@pytest.mark.parametrize("sliced", [False, True])
def test_several_views_and_composite_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sliced: bool
) -> None:
    """Two views with their own keys; ``sliced``: each joined in several slices, by
    ranges of its one integer key, by hash of the composite one."""
    import shipyard.features.offline as offline

    if sliced:
        monkeypatch.setattr(offline, "_SLICE_ROWS", 60)
        monkeypatch.setattr(offline, "_SLICE_MIN_ENTITIES", 10)
    plans = _spy_joins(monkeypatch)
    rng = np.random.default_rng(3)
    n = 400
    trips = pd.DataFrame(
        {
            "driver_id": rng.integers(1001, 1006, n),
            "city": rng.choice(["paris", "lyon"], n),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 48 * 3600, n), "s"),
            "surge": rng.random(n),
        }
    )
    trips["created"] = trips["event_timestamp"]
    stats = driver_stats(n_drivers=5, hours=48, start="2026-03-01")
    root = tmp_path / "repo"
    write_definitions(root, stats, ttl="2h")
    trips.to_parquet(root / "trips.parquet", index=False)
    text = (root / "features.yaml").read_text()
    text = text.replace(
        "entities:\n", "entities:\n  - name: driver_city\n    join_keys: [driver_id, city]\n", 1
    )
    text = text.replace("sources:\n", "sources:\n  - name: trips\n    path: trips.parquet\n", 1)
    text += (
        "  - name: city_surge\n    entities: [driver_city]\n    source: trips\n    ttl: 6h\n"
        "    features:\n      - {name: surge, dtype: float64}\n"
    )
    (root / "features.yaml").write_text(text)
    service = _service(tmp_path)
    service.apply(root / "features.yaml")
    entities = pd.DataFrame(
        {
            "driver_id": rng.integers(1001, 1007, 300),
            "city": rng.choice(["paris", "lyon", "nice"], 300),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 50 * 3600, 300), "s"),
        }
    )
    result = service.training_set(entities, ["driver_stats:conv_rate", "city_surge:surge"])
    assert list(result.columns) == ["driver_id", "city", "event_timestamp", "conv_rate", "surge"]
    assert_matches(
        result,
        reference(
            entities, stats, keys=["driver_id"], features=["conv_rate"], ttl=timedelta(hours=2)
        ),
        ["conv_rate"],
    )
    expected = reference(
        entities, trips, keys=["driver_id", "city"], features=["surge"], ttl=timedelta(hours=6)
    )
    assert_matches(result, expected, ["surge"])
    assert result["surge"].notna().sum() > 20
    if sliced:  # (tie-break, slices, by ranges): ranges of driver_id, hash of (driver_id, city)
        assert [(s > 1, ranges) for _, s, ranges in plans] == [(True, True), (True, False)]
    else:
        assert [s for _, s, _ in plans] == [1, 1]


def test_full_feature_names_and_other_timestamp_column(tmp_path: Path) -> None:
    stats = driver_stats(n_drivers=4, hours=24)
    service = _applied(tmp_path, stats, ttl="2h")
    entities = entity_rows(stats, 50).rename(columns={"event_timestamp": "at"})
    result = service.training_set(
        entities, REFS[:1], timestamp_column="at", full_feature_names=True
    )
    assert list(result.columns) == ["driver_id", "at", "label", "driver_stats__conv_rate"]


def test_bad_requests_name_what_is_wrong(tmp_path: Path) -> None:
    stats = driver_stats(n_drivers=2, hours=5)
    service = _applied(tmp_path, stats)
    entities = entity_rows(stats, 5)
    with pytest.raises(InvalidInputError, match="no feature view 'nope'"):
        service.training_set(entities, ["nope:x"])
    with pytest.raises(InvalidInputError, match="has no feature 'speed'"):
        service.training_set(entities, ["driver_stats:speed"])
    with pytest.raises(InvalidInputError, match="must read view:feature"):
        service.training_set(entities, ["conv_rate"])
    with pytest.raises(InvalidInputError, match="no column 'driver_id'"):
        service.training_set(entities.drop(columns=["driver_id"]), REFS)
    with pytest.raises(InvalidInputError, match="not a timestamp"):
        service.training_set(entities.assign(event_timestamp="soon"), REFS)
    with pytest.raises(
        InvalidInputError,
        match=r"feature view 'driver_stats'.*join key types: 'driver_id' is VARCHAR in the "
        r"entity table and BIGINT in the source",
    ):
        service.training_set(entities.assign(driver_id="x"), REFS)


def test_an_error_that_is_not_about_keys_does_not_blame_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DuckDB error elsewhere (here: a feature cast that fails) names the view and says
    what DuckDB said, once, without a doubled period or a guess about the join keys."""
    import shipyard.features.offline as offline

    stats = driver_stats(n_drivers=2, hours=5)
    service = _applied(tmp_path, stats)
    monkeypatch.setitem(offline.SQL_TYPES, "float32", "NO_SUCH_TYPE")
    with pytest.raises(InvalidInputError) as raised:
        service.training_set(entity_rows(stats, 5), REFS)
    message = str(raised.value)
    assert "feature view 'driver_stats'" in message and "NO_SUCH_TYPE" in message
    assert "join key" not in message and ".." not in message


def test_on_demand_features_in_a_training_set(tmp_path: Path) -> None:
    from driver_fx import ON_DEMAND_YAML

    stats = driver_stats(n_drivers=4, hours=24)
    path = write_definitions(tmp_path / "repo", stats, ttl="3h")
    path.write_text(path.read_text() + ON_DEMAND_YAML)
    service = _service(tmp_path)
    service.apply(path)
    entities = entity_rows(stats, 80).assign(trip_distance=np.linspace(1, 9, 80))
    result = service.training_set(entities, ["trip_features:conv_per_km", REFS[2]])
    # Only what was asked for comes out; the function's input is fetched but not returned.
    assert list(result.columns) == [*entities.columns, "conv_per_km", "avg_daily_trips"]
    with_inputs = service.training_set(entities, ["driver_stats:conv_rate"])
    expected = with_inputs["conv_rate"].astype("float64") / entities["trip_distance"]
    pd.testing.assert_series_equal(result["conv_per_km"], expected, check_names=False)
    with pytest.raises(InvalidInputError, match="needs 'trip_distance'"):
        service.training_set(
            entities.drop(columns=["trip_distance"]), ["trip_features:conv_per_km"]
        )


def test_an_on_demand_function_that_cannot_be_imported(tmp_path: Path) -> None:
    from driver_fx import ON_DEMAND_YAML

    stats = driver_stats(n_drivers=2, hours=6)
    path = write_definitions(tmp_path / "repo", stats)
    path.write_text(path.read_text() + ON_DEMAND_YAML.replace("driver_fx:", "no_such_mod:"))
    service = _service(tmp_path)
    # Refused when applied, with what to do, not at the first training set or request.
    with pytest.raises(InvalidInputError, match=r"cannot import module 'no_such_mod'.*PYTHONPATH"):
        service.apply(path)


def test_every_dtype_streams_back_in_entity_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text, boolean, integer, float and timestamp features, the join's result streamed in
    small batches (in DuckDB's order) and put back in entity order: values as the
    reference, nulls where nothing matched, integers and booleans nullable."""
    import shipyard.features.offline as offline

    monkeypatch.setattr(offline, "_BATCH_ROWS", 7)
    rng = np.random.default_rng(3)
    n = 400
    source = pd.DataFrame(
        {
            "driver_id": rng.integers(1001, 1011, n),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 48 * 3600, n), "s"),
            "tier": rng.choice(["gold", "silver", "bronze"], n),
            "active": rng.random(n) < 0.5,
            "trips": rng.integers(0, 50, n).astype("int32"),
            "score": rng.normal(size=n),
            "joined": T0 - pd.to_timedelta(rng.integers(0, 1000, n), "D"),
        }
    )
    source["created"] = source["event_timestamp"]
    root = tmp_path / "repo"
    root.mkdir()
    source.to_parquet(root / "profile.parquet", index=False)
    (root / "features.yaml").write_text(
        "entities:\n  - name: driver\n    join_keys: [driver_id]\n"
        "sources:\n  - name: profile\n    path: profile.parquet\n"
        "    timestamp_field: event_timestamp\n    created_timestamp_column: created\n"
        "feature_views:\n  - name: profile\n    entities: [driver]\n    source: profile\n"
        "    ttl: 3h\n    features:\n      - {name: tier, dtype: string}\n"
        "      - {name: active, dtype: bool}\n      - {name: trips, dtype: int32}\n"
        "      - {name: score, dtype: float64}\n      - {name: joined, dtype: timestamp}\n"
    )
    service = _service(tmp_path)
    service.apply(root / "features.yaml")
    entities = pd.DataFrame(
        {
            "driver_id": rng.integers(1000, 1012, 300),  # 1000 and 1011 are unknown
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 50 * 3600, 300), "s"),
        }
    )
    names = ["tier", "active", "trips", "score", "joined"]
    result = service.training_set(entities, [f"profile:{f}" for f in names])
    pd.testing.assert_frame_equal(result[entities.columns], entities)
    expected = reference(
        entities, source, keys=["driver_id"], features=names, ttl=timedelta(hours=3)
    )
    # Timestamp features come out as naive UTC wall times (the source's are aware).
    assert_matches(result.assign(joined=result["joined"].dt.tz_localize("UTC")), expected, names)
    assert 0.2 < result["score"].notna().mean() < 1.0
    assert result["active"].dtype == "boolean" and result["trips"].dtype == "Int32"
    assert result["score"].dtype == "float64"
    assert pd.api.types.is_datetime64_any_dtype(result["joined"])
    assert pd.api.types.is_string_dtype(result["tier"])


def _spy_joins(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int, bool]]:
    """Record each view's join plan: (tie-break, slices, sliced by key ranges)."""
    import shipyard.features.offline as offline

    plans: list[tuple[bool, int, bool]] = []
    real = offline._plan_join

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        join = real(*args, **kwargs)
        plans.append((join.tie_break, join.slices, bool(join.bounds)))
        return join

    monkeypatch.setattr(offline, "_plan_join", spy)
    return plans


def test_sliced_joins_of_an_unordered_source_with_ties_match_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shuffled source holding ties, joined in several key-hash slices: the tie-break
    runs, every entity row comes out once, every value as the brute force."""
    import shipyard.features.offline as offline

    monkeypatch.setattr(offline, "_SLICE_ROWS", 200)
    monkeypatch.setattr(offline, "_SLICE_MIN_ENTITIES", 10)
    plans = _spy_joins(monkeypatch)
    stats = driver_stats(n_drivers=15, hours=60)
    # Ties: copies of some rows at the same event time, created earlier and later.
    tied = stats.sample(80, random_state=4)
    later = tied.assign(created=tied["created"] + pd.Timedelta(minutes=7), conv_rate=np.float32(9))
    earlier = tied.assign(created=tied["created"] - pd.Timedelta(minutes=7), acc_rate=-1.0)
    stats = pd.concat([stats, later, earlier]).sample(frac=1, random_state=5)
    service = _applied(tmp_path, stats.reset_index(drop=True), ttl="3h")
    entities = entity_rows(stats, 700)
    result = service.training_set(entities, REFS)
    ((tie_break, slices, ranges),) = plans
    assert tie_break and ranges and slices == -(-len(stats) // 200)
    pd.testing.assert_frame_equal(result[entities.columns], entities)
    expected = reference(
        entities, stats, keys=["driver_id"], features=FEATURES, ttl=timedelta(hours=3)
    )
    assert_matches(result, expected, FEATURES)
    assert (result["conv_rate"] == 9).sum() > 0  # the later copies won some rows


def test_the_tie_break_is_skipped_only_for_a_strictly_ordered_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = _spy_joins(monkeypatch)
    entities = pd.DataFrame({"driver_id": [1001, 1002], "event_timestamp": [T0, T0]})
    ordered = _rows(
        (1001, T0 - pd.Timedelta(hours=1), T0, 0.1, 0.1, 1),
        (1001, T0, T0, 0.2, 0.2, 2),
        (1002, T0 - pd.Timedelta(hours=2), T0, 0.3, 0.3, 3),
    )
    by_time = ordered.sort_values(["event_timestamp", "driver_id"])
    # Sorted by key and time, but two rows share one: the later created (listed first) wins.
    tied = _rows(
        (1001, T0, T0 + pd.Timedelta(minutes=9), 0.4, 0.4, 4),
        (1001, T0, T0 + pd.Timedelta(minutes=1), 0.5, 0.5, 5),
        (1002, T0, T0, 0.6, 0.6, 6),
    )
    answers = []
    for i, stats in enumerate([ordered, by_time, tied]):
        service = _applied(tmp_path / str(i), stats, ttl="1d")
        answers.append(service.training_set(entities, REFS)["avg_daily_trips"].tolist())
    assert plans == [(False, 1, False), (False, 1, False), (True, 1, False)]
    assert answers == [[2, 3], [2, 3], [4, 6]]


def test_integer_keys_wider_than_32_bits_join_exactly(tmp_path: Path) -> None:
    """Entity keys that fit 32 bits are joined as such; source keys that do not fit
    match none of them (not an error, not a wrapped-around match)."""
    big = 2**32 + 1001  # 1001 in its low 32 bits
    stats = _rows(
        (1001, T0, T0, 0.1, 0.1, 1),
        (big, T0, T0, 0.2, 0.2, 2),
    )
    service = _applied(tmp_path, stats, ttl="1d")
    small = pd.DataFrame({"driver_id": [1001, 1002], "event_timestamp": [T0, T0]})
    assert service.training_set(small, REFS)["avg_daily_trips"].tolist() == [1, pd.NA]
    wide = pd.DataFrame({"driver_id": [big, 1001], "event_timestamp": [T0, T0]})
    assert service.training_set(wide, REFS)["avg_daily_trips"].tolist() == [2, 1]
