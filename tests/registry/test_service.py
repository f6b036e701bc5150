"""The registry service end to end: real models, real stores, both metadata back ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.errors import (
    AliasNotFoundError,
    IntegrityError,
    InvalidReferenceError,
    ModelNotFoundError,
    SchemaError,
    VersionNotFoundError,
)
from shipyard.quickstart import IRIS_RECORD, iris_frame


@pytest.fixture
def client(backend_settings: Settings) -> Shipyard:
    client = Shipyard(backend_settings)
    yield client
    client.close()


@pytest.fixture
def iris_model() -> tuple[LogisticRegression, pd.DataFrame, pd.Series]:
    X, y = iris_frame()
    return LogisticRegression(max_iter=500).fit(X, y), X, y


def test_log_load_predict_roundtrip(client: Shipyard, iris_model) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    version = client.registry.log_model(model, "iris", sample=X, metrics={"accuracy": 0.97})
    assert version.ref == "iris:1"
    assert version.metrics == {"accuracy": 0.97}
    client.registry.set_alias("iris", "production", 1)
    loaded = client.registry.load("iris")
    assert (loaded.name, loaded.version) == ("iris", 1)
    assert loaded.predict(IRIS_RECORD).tolist() == model.predict(X.iloc[[0]]).tolist()
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert list(loaded.classes) == ["setosa", "versicolor", "virginica"]


def test_resolve_forms(client: Shipyard, iris_model) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    for _ in range(3):
        client.registry.log_model(model, "iris", sample=X)
    client.registry.set_alias("iris", "staging", 2)
    assert client.registry.resolve("iris:3").version == 3
    assert client.registry.resolve("iris@staging").version == 2
    assert client.registry.resolve("models:/iris@staging").version == 2
    assert client.registry.resolve("iris@latest").version == 3
    with pytest.raises(AliasNotFoundError, match="aliases: staging"):
        client.registry.resolve("iris")
    with pytest.raises(VersionNotFoundError, match="Versions: 1, 2, 3"):
        client.registry.resolve("iris:9")
    with pytest.raises(ModelNotFoundError, match="Registered models: iris"):
        client.registry.resolve("wine")
    with pytest.raises(InvalidReferenceError):
        client.registry.resolve("iris:zero")


def test_schema_errors_name_the_column(client: Shipyard, iris_model) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    client.registry.log_model(model, "iris", sample=X)
    loaded = client.registry.load("iris:1")
    record = dict(IRIS_RECORD)
    del record["petal_width"]
    with pytest.raises(SchemaError, match="petal_width") as info:
        loaded.predict(record)
    assert info.value.field == "petal_width"
    with pytest.raises(SchemaError, match="sepal_length") as info:
        loaded.predict({**IRIS_RECORD, "sepal_length": "wide"})
    assert info.value.expected is not None


def test_tampered_artifact_is_refused(client: Shipyard, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    version = client.registry.log_model(model, "iris", sample=X)
    manifest = client.registry.manifest(version)
    digest = next(e.sha256 for p, e in manifest.files.items() if p.startswith("model/"))
    blob = client.settings.home / "artifacts" / "blobs" / digest[:2] / digest
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    # Drop the local cache so the next load goes back to the artifact store.
    import shutil

    shutil.rmtree(client.registry.cache_dir)
    with pytest.raises(IntegrityError):
        client.registry.load("iris:1")
    assert client.models.get_version("iris", 1).status == "ready"


def _damage(path: Path, how: str) -> None:
    if how == "flipped":
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:7])
    elif how == "emptied":
        path.write_bytes(b"")
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["flipped", "truncated", "emptied", "deleted"])
def test_a_damaged_cache_entry_heals_from_the_artifact_store(
    client: Shipyard, iris_model, how: str, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    version = client.registry.log_model(model, "iris", sample=X)
    package = client.registry.package_dir(version)
    target = next(p for p in (package / "model").rglob("*") if p.is_file())
    original = target.read_bytes()
    _damage(target, how)

    loaded = client.registry.load("iris:1")
    assert loaded.predict(X).tolist() == model.predict(X).tolist()
    assert target.read_bytes() == original  # the cached copy was fetched again
    assert "iris:1" in caplog.text and "damaged" in caplog.text

    _damage(target, how)  # the files `shipyard package` copies heal the same way
    folder = client.registry.verified_package_dir(version)
    assert (folder / target.relative_to(package)).read_bytes() == original


def test_a_damaged_cache_over_a_damaged_store_names_the_version(
    client: Shipyard, iris_model
) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    version = client.registry.log_model(model, "iris", sample=X)
    package = client.registry.package_dir(version)
    target = next(p for p in (package / "model").rglob("*") if p.is_file())
    relpath = target.relative_to(package).as_posix()
    digest = client.registry.manifest(version).files[relpath].sha256
    _damage(client.settings.home / "artifacts" / "blobs" / digest[:2] / digest, "flipped")
    _damage(target, "flipped")

    with pytest.raises(IntegrityError, match=rf"iris:1.*{relpath}"):
        client.registry.load("iris:1")


def test_versions_link_run_and_data(client: Shipyard, iris_model) -> None:  # type: ignore[no-untyped-def]
    model, X, y = iris_model
    with client.tracker.start_run("iris") as run:
        fp = run.log_dataset(pd.concat([X, y], axis=1))
        version = client.registry.log_model(
            model, "iris", sample=X, run_id=run.id, data_fingerprint=fp.to_dict()
        )
    assert version.run_id == run.id
    assert version.data_fingerprint["content_hash"] == fp.content_hash
    manifest = client.registry.manifest(version)
    assert manifest.run_id == run.id and manifest.version == 1
    assert "scikit-learn" in manifest.environment["packages"]


def test_archive_and_restore(client: Shipyard, iris_model) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    client.registry.log_model(model, "iris", sample=X)
    client.registry.archive("iris:1", reason="superseded")
    assert client.models.get_version("iris", 1).status == "archived"
    client.registry.archive("iris:1", restore=True)
    assert client.models.get_version("iris", 1).status == "ready"
    with pytest.raises(InvalidReferenceError):
        client.registry.archive("iris@staging")
    actions = [e.action for e in client.audit.log(model="iris")]
    assert actions == ["restore_version", "archive_version"]


def test_reference_profile_is_stored_with_the_version(client: Shipyard, iris_model) -> None:  # type: ignore[no-untyped-def]
    model, X, _ = iris_model
    version = client.registry.log_model(model, "iris", sample=X)
    profile = client.references.load(version)
    assert profile.n_rows == len(X)
    assert sorted(profile.columns) == sorted(X.columns)
