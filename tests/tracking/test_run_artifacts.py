"""Run artifacts: every kind round-trips through the content-addressed store, checksummed.

One suite on SQLite and PostgreSQL, with a local folder and a real S3 API (moto's server,
shared by the suite; a bucket per test).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_iris

from services import s3_options
from shipyard.errors import IntegrityError, InvalidInputError
from shipyard.store.artifacts import ArtifactStore, FsspecArtifactStore, LocalArtifactStore
from shipyard.store.database import Database
from shipyard.store.run_store import RunStore
from shipyard.tracking.artifacts import download
from shipyard.tracking.runs import Tracker


@pytest.fixture(params=["local", "s3"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return FsspecArtifactStore(f"s3://{bucket}/artifacts", s3_options(endpoint))


@pytest.fixture
def tracker(database: Database, artifact_store: ArtifactStore) -> Iterator[Tracker]:
    tracker = Tracker(RunStore(database), actor="ann", artifacts=lambda: artifact_store)
    yield tracker
    tracker.writer.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_kind_of_artifact_round_trips(
    tracker: Tracker, artifact_store: ArtifactStore, tmp_path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iris = load_iris(as_frame=True).frame
    report = tmp_path / "report.md"
    report.write_text("# accuracy 0.97\n")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.csv").write_text("x\n1\n")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])

    with tracker.start_run("iris") as run:
        run.log_artifact(report)
        run.log_artifact(report, "docs")
        run.log_artifacts(folder, "plots")
        run.log_figure(fig, "confusion.png")
        run.log_table(iris, "iris.parquet")
        run.log_table(iris.head(3), "head.csv")
        run.log_text("hello", "notes/hello.txt")
        run.log_dict({"C": 1.0, "layers": [1, 2]}, "config.json")
        run.log_dict({"C": 1.0}, "config.yaml")
    plt.close(fig)

    listed = {a.path: a for a in tracker.store.list_artifacts(run.id)}
    assert set(listed) == {
        "report.md",
        "docs/report.md",
        "plots/a.txt",
        "plots/sub/b.csv",
        "confusion.png",
        "iris.parquet",
        "head.csv",
        "notes/hello.txt",
        "config.json",
        "config.yaml",
    }
    kinds = {p: a.kind for p, a in listed.items()}
    assert kinds["confusion.png"] == "image" and kinds["iris.parquet"] == "table"
    assert kinds["notes/hello.txt"] == "text" and kinds["config.json"] == "json"
    # Content-addressed: the same file logged twice is one blob.
    assert listed["report.md"].digest == listed["docs/report.md"].digest
    for artifact in listed.values():
        data = artifact_store.get_bytes(artifact.digest)
        assert _sha(data) == artifact.digest and len(data) == artifact.size
    assert artifact_store.get_bytes(listed["confusion.png"].digest)[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_parquet(io.BytesIO(artifact_store.get_bytes(listed["iris.parquet"].digest)))
    pd.testing.assert_frame_equal(table, iris)
    assert json.loads(artifact_store.get_bytes(listed["config.json"].digest)) == {
        "C": 1.0,
        "layers": [1, 2],
    }
    assert yaml.safe_load(artifact_store.get_bytes(listed["config.yaml"].digest)) == {"C": 1.0}

    written = download(tracker.store, artifact_store, run.id, tmp_path / "out")
    assert len(written) == len(listed)
    assert (tmp_path / "out" / "plots" / "sub" / "b.csv").read_text() == "x\n1\n"
    assert (tmp_path / "out" / "notes" / "hello.txt").read_text() == "hello"


def test_bad_artifacts_are_refused_with_the_reason(tracker: Tracker, tmp_path: Path) -> None:
    with tracker.start_run("iris") as run:
        with pytest.raises(InvalidInputError, match=r"'\.\./escape\.txt'.*relative"):
            run.log_text("x", "../escape.txt")
        with pytest.raises(InvalidInputError, match="'/etc/passwd'"):
            run.log_text("x", "/etc/passwd")
        with pytest.raises(InvalidInputError, match="expects a pandas DataFrame, got list"):
            run.log_table([1, 2], "t.parquet")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match=r"'t\.xlsx'.*\.parquet"):
            run.log_table(pd.DataFrame({"a": [1]}), "t.xlsx")
        with pytest.raises(InvalidInputError, match="matplotlib Figure"):
            run.log_figure(object(), "f.png")
        with pytest.raises(InvalidInputError, match="not a file"):
            run.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(InvalidInputError, match="not a folder"):
            run.log_artifacts(tmp_path / "missing")
        with pytest.raises(InvalidInputError, match=r"'m\.parquet' cannot be written as parquet"):
            run.log_table(pd.DataFrame({"a": [1, "x", None]}), "m.parquet")
        with pytest.raises(InvalidInputError, match=r"'np\.yaml' cannot be written as YAML"):
            run.log_dict({"a": np.float32(1.5)}, "np.yaml")
    assert tracker.store.list_artifacts(run.id) == []


def test_a_changed_blob_is_refused_on_download(database: Database, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    tracker = Tracker(RunStore(database), actor="ann", artifacts=lambda: store)
    with tracker.start_run("iris") as run:
        artifact = run.log_text("original", "note.txt")
    blob = tmp_path / "artifacts" / "blobs" / artifact.digest[:2] / artifact.digest
    blob.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="modified after it was stored"):
        download(tracker.store, store, run.id, tmp_path / "out")
    assert not (tmp_path / "out" / "note.txt").exists()


def test_matplotlib_is_imported_only_by_the_caller() -> None:
    code = (
        "import sys, pandas\n"
        "from shipyard.tracking import runs, artifacts\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_read_artifact_reads_only_the_runs_own_paths(
    database: Database, artifact_store: ArtifactStore
) -> None:
    from shipyard.errors import NotFoundError
    from shipyard.tracking.artifacts import RunArtifacts, read_artifact

    runs = RunStore(database)
    mine = runs.create_run("exp", name="mine", actor="ann")
    other = runs.create_run("exp", name="other", actor="ann")
    RunArtifacts(runs, artifact_store, mine.id).log_text("hello", "notes/a.txt")
    RunArtifacts(runs, artifact_store, other.id).log_text("secret", "secret.txt")
    artifact, data = read_artifact(runs, artifact_store, mine.id, "notes/a.txt")
    assert (artifact.path, artifact.kind, data) == ("notes/a.txt", "text", b"hello")
    with pytest.raises(NotFoundError, match=r"has no artifact 'secret\.txt'"):
        read_artifact(runs, artifact_store, mine.id, "secret.txt")
    with pytest.raises(InvalidInputError, match="must be relative and stay inside the run"):
        read_artifact(runs, artifact_store, mine.id, "notes/../../secret.txt")
