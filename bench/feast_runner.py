"""Run Feast's get_historical_features inside Feast's own venv (bench/.peers/feast).

Used by ``bench/features.py`` and by the parity test in
``tests/features/test_feast_parity.py``: the same feature data, the same
entity rows, Feast's answer written to Parquet with the wall time and the
peak RSS of this process printed as JSON on the last line.

    bench/.peers/feast/bin/python bench/feast_runner.py --stats S.parquet \
        --entities E.parquet --ttl-seconds 7200 --store duckdb --output out.parquet

The entity file must carry a unique ``row_id`` column, so that the rows Feast
returns (in an order of its own) can be put back in input order.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips"]
#: Feast's type of each feature these scripts generate.
FEAST_TYPES = {
    "conv_rate": "Float32",
    "acc_rate": "Float64",
    "avg_daily_trips": "Int64",
    "rating": "Float64",
}
#: Feast's venv: its DuckDB offline store needs the duckdb extra (BENCHMARKING.md).
FEAST_REQUIREMENTS = ["feast[duckdb]==0.67.*", "pandas<3"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stats", required=True)
    parser.add_argument("--entities", required=True)
    parser.add_argument("--ttl-seconds", type=int, required=True)
    parser.add_argument("--store", choices=["duckdb", "file"], default="duckdb")
    parser.add_argument("--output", required=True)
    parser.add_argument("--features", default=",".join(FEATURES))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast import types as feast_types

    features = args.features.split(",")

    repo = Path(tempfile.mkdtemp(prefix="feast-repo-"))
    (repo / "data").mkdir()
    (repo / "feature_store.yaml").write_text(
        "project: parity\n"
        f"registry: {repo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        f"offline_store:\n    type: {'duckdb' if args.store == 'duckdb' else 'dask'}\n"
        f"online_store:\n    type: sqlite\n    path: {repo / 'data' / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    source = FileSource(
        name="driver_stats_source",
        path=str(Path(args.stats).resolve()),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    view = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=timedelta(seconds=args.ttl_seconds),
        schema=[Field(name=f, dtype=getattr(feast_types, FEAST_TYPES[f])) for f in features],
        source=source,
        online=False,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([driver, view])
    entities = pd.read_parquet(args.entities)
    started = time.perf_counter()
    frame = store.get_historical_features(
        entity_df=entities, features=[f"driver_stats:{f}" for f in features]
    ).to_df()
    seconds = time.perf_counter() - started
    frame = frame.sort_values("row_id").reset_index(drop=True)
    frame.to_parquet(args.output, index=False)
    from _rss import peak_rss_mb  # next to this script (not ru_maxrss: see _rss)

    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rows": len(frame)}))


if __name__ == "__main__":
    main()
