"""``shipyard package`` writes a build context from a registered version."""

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame


def test_package_writes_dockerfile_requirements_and_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    client = Shipyard(Settings(home=home))
    X, y = iris_frame()
    version = client.registry.log_model(
        LogisticRegression(max_iter=300).fit(X, y), "iris", sample=X
    )
    client.registry.set_alias("iris", "production", version.version)
    out = tmp_path / "context"
    result = CliRunner().invoke(app, ["package", "iris", "--out", str(out)])
    assert result.exit_code == 0, result.output
    dockerfile = (out / "Dockerfile").read_text()
    assert "EXPOSE 8000" in dockerfile and "HEALTHCHECK" in dockerfile
    requirements = (out / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements if line and not line.startswith("#")]
    # Every package is pinned exactly; Shipyard itself comes as a wheel (below).
    assert pins and all("==" in line for line in pins if not line.startswith("shipyard @"))
    assert any(line.startswith("scikit-learn==") for line in pins)
    # Shipyard travels as a wheel built from its source, with its own deps pinned.
    shipyard_line = next(line for line in pins if line.startswith("shipyard"))
    wheel = shipyard_line.split("file:///opt/wheels/")[1]
    assert (out / "wheels" / wheel).is_file()
    assert "COPY wheels/ /opt/wheels/" in dockerfile
    assert "kind: Deployment" in (out / "kubernetes.yaml").read_text()
    assert any(line.startswith("fastapi==") for line in pins)
    copied = client.registry.manifest(version)
    for relpath in copied.files:
        assert (out / "model" / relpath).is_file(), relpath
