"""The demo's feature-store act on its own: every step of it really happens."""

from __future__ import annotations

from pathlib import Path

from shipyard._client import Shipyard
from shipyard.config import Settings
from shipyard.demo_features import MODEL, feature_act


def test_the_act_serves_by_driver_id_without_skew(tmp_path: Path) -> None:
    client = Shipyard(Settings(home=tmp_path / "home", user="demo"))
    said: list[str] = []
    try:
        outcome, report = feature_act(client, tmp_path / "act", said.append)
        assert outcome.startswith(f"{MODEL}:1 by driver_id -> ")
        assert "no skew over 40 served rows (100% equal to offline)" in outcome
        assert report.read_text().lower().count("<html") == 1
        assert any(line.startswith("features apply: entity driver v1") for line in said)
        version = client.models.get_version(MODEL, 1)
        assert client.registry.load(version.ref).manifest.features is not None
        assert [c.model for c in client.feature_store.consumers("driver_stats")] == [MODEL]
    finally:
        client.close()
