"""Driver statistics for feature-store tests, and a brute-force point-in-time reference.

The statistics and their definitions come from :mod:`shipyard.features.examples`,
the generator the demo and ``bench/features.py`` use too.

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

from shipyard.features.examples import definitions_yaml, driver_stats

__all__ = [
    "assert_matches",
    "definitions_yaml",
    "driver_stats",
    "entity_rows",
    "reference",
    "write_definitions",
]


def write_definitions(root: Path, stats: pd.DataFrame, *, ttl: str = "2h") -> Path:
    """Write ``stats`` as Parquet and the definitions YAML naming it; returns the YAML path."""
    root.mkdir(parents=True, exist_ok=True)
    stats.to_parquet(root / "driver_stats.parquet", index=False)
    path = root / "features.yaml"
    path.write_text(definitions_yaml("driver_stats.parquet", ttl))
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
