"""A training set built in a run is recorded on it, and a model logged there keeps its features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from driver_data import driver_stats, entity_rows, write_definitions
from sklearn.linear_model import LogisticRegression

import shipyard
import shipyard.features
from shipyard.errors import ConflictError

REFS = ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:avg_daily_trips"]


@pytest.fixture
def configured(tmp_path: Path):  # type: ignore[no-untyped-def]
    client = shipyard.configure(shipyard.Settings(home=tmp_path / "home", user="api"))
    yield client
    client.close()


def test_log_model_in_a_run_keeps_the_feature_references(configured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stats = driver_stats(n_drivers=8, hours=48)
    path = write_definitions(tmp_path / "repo", stats, ttl="3h")
    shipyard.features.apply(path)
    entities = entity_rows(stats, 400)
    with shipyard.start_run("eta") as run:
        train = shipyard.features.training_set(entities, REFS).dropna()
        X = train[["conv_rate", "acc_rate", "avg_daily_trips"]].astype("float64")
        model = LogisticRegression().fit(X, train["label"])
        version = shipyard.log_model(model, "eta", sample=X.head(50), optimize=False)

    recorded = configured.runs.get_run(run.id)
    tag = json.loads(recorded.tags["shipyard.features"])
    assert tag["refs"] == REFS
    assert tag["views"] == {"driver_stats": 1}
    assert tag["join_keys"] == ["driver_id"]
    assert tag["training_set"]["n_rows"] == len(entities)
    assert recorded.datasets["training"]["content_hash"] == tag["training_set"]["content_hash"]

    loaded = shipyard.load_model(f"eta:{version.version}")
    assert loaded.manifest.features is not None
    assert loaded.manifest.features["refs"] == REFS
    assert loaded.manifest.features["views"] == {"driver_stats": 1}
    assert loaded.manifest.data_fingerprint["content_hash"] == tag["training_set"]["content_hash"]
    assert [c.model for c in configured.feature_store.consumers("driver_stats")] == ["eta"]

    # The model now guards its view: removing a feature it uses is refused.
    path.write_text(path.read_text().replace("      - {name: acc_rate, dtype: float64}\n", ""))
    with pytest.raises(ConflictError, match="used by eta:1"):
        shipyard.features.apply(path)
