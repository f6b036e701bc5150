"""The module-level Python API on a private default client."""

from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier

import shipyard
from shipyard.quickstart import IRIS_RECORD, iris_frame


@pytest.fixture
def configured(tmp_path: Path):  # type: ignore[no-untyped-def]
    client = shipyard.configure(shipyard.Settings(home=tmp_path / "home", user="api"))
    yield client
    client.close()


def test_run_log_load_with_lineage_and_onnx(configured) -> None:  # type: ignore[no-untyped-def]
    X, y = iris_frame()
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    with shipyard.start_run("iris") as run:
        run.log_dataset(X.assign(species=y))
        version = shipyard.log_model(
            model, "iris", sample=X, metrics={"accuracy": 0.95}, alias="production", optimize=True
        )
    assert version.aliases == ("production",)
    assert version.run_id == run.id
    assert version.data_fingerprint is not None
    assert configured.runs.get_run(run.id).metrics == {"accuracy": 0.95}
    assert configured.models.get_version("iris", 1).tags.get("onnx_status") == "verified"
    assert shipyard.load_model("iris").predict(IRIS_RECORD)[0] == "setosa"
