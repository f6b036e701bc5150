"""Driver statistics for feature-store tests, and a brute-force point-in-time reference.

The reference is Feast's documented rule written as plainly as possible, one
entity row at a time: the same key, an event time at or before the entity
row's and not older than the TTL (both ends inclusive), the latest event time
then the latest created time; nothing found gives None.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

YAML = """
entities:
  - name: driver
    join_keys: [driver_id]
sources:
  - name: driver_stats_source
    path: {path}
    timestamp_field: event_timestamp
    created_timestamp_column: created
feature_views:
  - name: driver_stats
    entities: [driver]
    source: driver_stats_source
    ttl: {ttl}
    features:
      - {{name: conv_rate, dtype: float32}}
      - {{name: acc_rate, dtype: float64}}
      - {{name: avg_daily_trips, dtype: int64}}
"""


def driver_stats(
    n_drivers: int = 20, hours: int = 72, *, seed: int = 0, start: str = "2026-01-01"
) -> pd.DataFrame:
    """Hourly rows per driver (some hours skipped), event and created timestamps in UTC."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    drivers = np.repeat(np.arange(1001, 1001 + n_drivers), hours)
    stamps = np.tile(times, n_drivers)
    frame = pd.DataFrame({"driver_id": drivers, "event_timestamp": stamps})
    frame = frame[rng.random(len(frame)) > 0.2].reset_index(drop=True)  # gaps
    n = len(frame)
    frame["created"] = frame["event_timestamp"] + pd.to_timedelta(rng.integers(0, 600, n), "s")
    frame["conv_rate"] = rng.random(n).astype("float32")
    frame["acc_rate"] = rng.random(n)
    frame["avg_daily_trips"] = rng.integers(0, 500, n).astype("int64")
    return frame


def write_definitions(root: Path, stats: pd.DataFrame, *, ttl: str = "2h") -> Path:
    """Write ``stats`` as Parquet and the definitions YAML naming it; returns the YAML path."""
    root.mkdir(parents=True, exist_ok=True)
    stats.to_parquet(root / "driver_stats.parquet", index=False)
    path = root / "features.yaml"
    path.write_text(YAML.format(path="driver_stats.parquet", ttl=ttl))
    return path


def entity_rows(stats: pd.DataFrame, n: int, *, seed: int = 1) -> pd.DataFrame:
    """Random drivers (a few unknown) at random times across the data, with a label."""
    rng = np.random.default_rng(seed)
    known = stats["driver_id"].unique()
    drivers = rng.choice(np.append(known, [1, 2, 3]), n)
    lo = stats["event_timestamp"].min() - pd.Timedelta(hours=3)
    span = (stats["event_timestamp"].max() - lo).total_seconds() + 4 * 3600
    times = lo + pd.to_timedelta(rng.integers(0, int(span), n), "s")
    return pd.DataFrame(
        {"driver_id": drivers, "event_timestamp": times, "label": rng.integers(0, 2, n)}
    )


def reference(
    entities: pd.DataFrame,
    source: pd.DataFrame,
    *,
    keys: list[str],
    features: list[str],
    ttl: timedelta | None,
    created: str | None = "created",
    ts: str = "event_timestamp",
) -> list[dict[str, object]]:
    """For each entity row, the feature values the point-in-time rule picks (None if none)."""
    src = source.copy()
    src["_ts"] = pd.to_datetime(src[ts], utc=True)
    src["_created"] = pd.to_datetime(src[created], utc=True) if created else pd.NaT
    groups = {(k if isinstance(k, tuple) else (k,)): g for k, g in src.groupby(keys)}
    out = []
    for row in entities.itertuples(index=False):
        at = pd.Timestamp(row.event_timestamp)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        key = tuple(getattr(row, k) for k in keys)
        group = groups.get(key)
        best = None
        if group is not None:
            ok = group[(group["_ts"] <= at) & ((group["_ts"] >= at - ttl) if ttl else True)]
            if len(ok):
                best = ok.sort_values(["_ts", "_created"]).iloc[-1]
        out.append({f: (None if best is None else best[f]) for f in features})
    return out


def assert_matches(result: pd.DataFrame, expected: list[dict[str, object]], features: list[str]):
    """Every value equal to the reference (nulls where it found nothing), row by row."""
    assert len(result) == len(expected)
    for i, want in enumerate(expected):
        for f in features:
            got = result[f].iloc[i]
            if want[f] is None:
                assert pd.isna(got), (i, f, got)
            else:
                assert not pd.isna(got), (i, f, want[f])
                assert got == want[f], (i, f, got, want[f])
