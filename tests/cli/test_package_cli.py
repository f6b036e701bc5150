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


OPTIONAL = ("xgboost", "xgboost-cpu", "lightgbm", "onnx", "onnxruntime", "skl2onnx",
            "onnxmltools", "s3fs", "botocore", "aiobotocore")  # fmt: skip


def _pins(out: Path) -> dict[str, str]:
    lines = (out / "requirements.txt").read_text().splitlines()
    return dict(
        line.split("==", 1) if "==" in line else (line, "")
        for line in lines
        if line and not line.startswith("#")
    )


@pytest.fixture
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shipyard:
    """iris:1 (scikit-learn), iris:2 (XGBoost), diabetes:1 (LightGBM) on a private home."""
    from lightgbm import LGBMRegressor
    from sklearn.datasets import load_diabetes
    from xgboost import XGBClassifier

    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    client = Shipyard(Settings(home=home))
    X, y = iris_frame()
    client.registry.log_model(LogisticRegression(max_iter=300).fit(X, y), "iris", sample=X)
    codes = y.astype("category").cat.codes
    client.registry.log_model(XGBClassifier(n_estimators=5).fit(X, codes), "iris", sample=X)
    Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
    booster = LGBMRegressor(n_estimators=10, verbose=-1).fit(Xd, yd)
    client.registry.log_model(booster, "diabetes", sample=Xd)
    return client


def _package(ref: str, out: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        ["package", ref, "--out", str(out), "--shipyard-requirement", "shipyard==0.1.0", *args],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("ref", "extras", "needed"),
    [
        ("iris:1", [], set()),
        ("iris:2", [], {"xgboost-cpu"}),
        ("diabetes:1", [], {"lightgbm"}),
        ("iris:1", ["--extra", "s3"], {"s3fs", "botocore"}),
    ],
)
def test_requirements_install_only_what_the_flavor_and_extras_need(
    registry_home: Shipyard, tmp_path: Path, ref: str, extras: list[str], needed: set[str]
) -> None:
    out = tmp_path / "ctx"
    _package(ref, out, *extras)
    pins = _pins(out)
    assert {name for name in pins if name in OPTIONAL} <= needed | {"aiobotocore"}
    assert needed <= set(pins), sorted(pins)
    assert all(pins[name] for name in needed)  # pinned exactly
    assert {"scikit-learn", "fastapi", "uvicorn", "duckdb"} <= set(pins)
    [shipyard_line] = [name for name in pins if name.startswith("shipyard")]
    wanted = {"xgboost-cpu": "xgboost", "lightgbm": "lightgbm", "s3fs": "s3"}
    named = sorted(wanted[n] for n in needed if n in wanted)
    assert shipyard_line == (f"shipyard[{','.join(named)}]" if named else "shipyard")


def test_an_unknown_extra_is_refused(registry_home: Shipyard, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["package", "iris:1", "--out", str(tmp_path / "ctx"), "--extra", "gpu"]
    )
    assert result.exit_code == 1
    assert "Unknown extra gpu" in result.output and "lightgbm, onnx, s3, xgboost" in result.output


def test_kubernetes_image_and_names_follow_the_options(
    registry_home: Shipyard, tmp_path: Path
) -> None:
    import yaml

    _package("iris:1", tmp_path / "v1")
    _package("iris:2", tmp_path / "v2", "--image", "registry.example.com/ml/iris:2")
    first = list(yaml.safe_load_all((tmp_path / "v1" / "kubernetes.yaml").read_text()))
    second = list(yaml.safe_load_all((tmp_path / "v2" / "kubernetes.yaml").read_text()))
    expected = ["iris-settings", "iris", "iris", "iris", "iris", "iris"]
    assert [d["metadata"]["name"] for d in first] == expected
    assert [d["metadata"]["name"] for d in second] == expected
    containers = [d["spec"]["template"]["spec"]["containers"][0] for d in (first[1], second[1])]
    assert [c["image"] for c in containers] == ["iris:1", "registry.example.com/ml/iris:2"]
    _package("iris:2", tmp_path / "web", "--name", "web")
    named = list(yaml.safe_load_all((tmp_path / "web" / "kubernetes.yaml").read_text()))
    assert [d["metadata"]["name"] for d in named] == ["web-settings", *["web"] * 5]
    [secret] = yaml.safe_load_all((tmp_path / "web" / "kubernetes-secret.yaml").read_text())
    assert secret["metadata"]["name"] == "web-secrets"


def test_scaling_and_settings_flags_reach_the_manifests(
    registry_home: Shipyard, tmp_path: Path
) -> None:
    import kubernetes_validate
    import yaml

    out = tmp_path / "ctx"
    _package(
        "iris:1",
        out,
        *("--replicas", "3", "--max-replicas", "12", "--cpu-target", "60"),
        *("--in-flight-target", "16", "--setting", "SHIPYARD_ARTIFACTS=s3://models/team"),
    )
    documents = list(yaml.safe_load_all((out / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert kinds["Deployment"]["spec"]["replicas"] == 3
    cpu, in_flight = hpa["metrics"]
    assert cpu["resource"]["target"]["averageUtilization"] == 60
    assert in_flight["pods"]["target"]["averageValue"] == "16"
    assert kinds["ConfigMap"]["data"]["SHIPYARD_ARTIFACTS"] == "s3://models/team"
    for document in documents:
        if document["kind"] != "ServiceMonitor":  # a CRD: not in Kubernetes' schemas
            kubernetes_validate.validate(document, kubernetes_validate.latest_version(), True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "5", "--max-replicas", "2"], "--replicas 5 is more than --max-replicas 2"),
        (["--setting", "SHIPYARD_DB=postgresql://x"], "kubernetes-secret.yaml"),
        (["--setting", "nonsense"], "expected SHIPYARD_NAME=VALUE"),
    ],
)
def test_bad_scaling_flags_are_refused_by_name(
    registry_home: Shipyard, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        app, ["package", "iris:1", "--out", str(tmp_path / "ctx"), *args], terminal_width=200
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_existing_out_folder_is_named_by_its_option(
    registry_home: Shipyard, tmp_path: Path
) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["package", "iris:1", "--out", str(out)], terminal_width=200)
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())
    assert "--out" in text and "already exists" in text and "out_dir" not in text
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
