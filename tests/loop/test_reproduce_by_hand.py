"""A run that records its pipeline by hand (``record_pipeline``), reproduced and traced
through the real ``shipyard`` command, on SQLite and PostgreSQL.

What a new user does from the README: snapshot the training data inside a run, record
the pipeline naming the dataset alone, train, ``shipyard.log_model`` inside the run;
then ``shipyard runs reproduce RUN --check`` and ``shipyard loop lineage``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard
from shipyard.config import Settings
from shipyard.errors import InvalidInputError
from shipyard.loop.pipelines import resolve_entry_point
from shipyard.loop.provenance import record_pipeline

SHIPYARD = Path(sys.executable).with_name("shipyard")
TRAIN = """from sklearn.linear_model import LogisticRegression


def fit(data, params):
    X = data.drop(columns=[params["target"]])
    model = LogisticRegression(C=params["C"], max_iter=500).fit(X, data[params["target"]])
    return model, {"accuracy": float(model.score(X, data[params["target"]]))}
"""


@pytest.fixture
def client(backend_settings: Settings) -> Iterator[shipyard.Shipyard]:
    c = shipyard.configure(backend_settings)
    yield c
    shipyard.configure(Settings(home=backend_settings.home, user="tester"))
    c.close()


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    return df.assign(churn=(df.a + df.b > 0).astype(int))


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIPYARD_HOME": str(settings.home), "SHIPYARD_USER": "tester"}
    if settings.db:
        env["SHIPYARD_DB"] = str(settings.db)
    return subprocess.run([SHIPYARD, *args], env=env, capture_output=True, text=True)


def _entry_point(folder: Path) -> str:
    module = f"train_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(TRAIN)
    return f"{module}:fit"


def _hand_run(client: shipyard.Shipyard, folder: Path, *, log_model: bool = True) -> str:
    """The README's example: snapshot, record the pipeline by dataset name, train, log."""
    entry = _entry_point(folder)
    df, params = _frame(), {"C": 1.0, "target": "churn"}
    with shipyard.start_run("churn") as run:
        fp = run.log_dataset(df, snapshot=True, source="visits.parquet")
        assert fp.snapshot == "churn-training:1"
        record = record_pipeline(
            client.datasets, run.id, entry_point=entry, params=params,
            code_path=folder, seed=42, snapshots={"training": "churn-training"},
        )  # fmt: skip
        # The bare name is pinned to the exact version, or reproducing would read the newest.
        assert record.snapshots == {"training": "churn-training:1"}
        model, metrics = resolve_entry_point(entry, folder)(df, params)
        run.log_metrics(metrics)
        if log_model:
            shipyard.log_model(model, "churn", sample=df.drop(columns=["churn"]).head(5))
    return run.id


def test_a_hand_recorded_run_reproduces_as_a_candidate_of_its_model(
    client: shipyard.Shipyard, backend_settings: Settings, tmp_path: Path
) -> None:
    run_id = _hand_run(client, tmp_path)
    # A newer version of the dataset must not be what the reproduction reads.
    client.data.snapshot(_frame().head(50), name="churn-training")

    done = _cli(backend_settings, "runs", "reproduce", run_id, "--check", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["ok"] is True and body["original"] == "churn:1"
    assert body["candidate"] == "churn:2"
    # The original trained on all rows, the reproduction on the seed's training split.
    assert body["predictions_identical"] is False
    candidate = client.registry.resolve("churn:2")
    assert candidate.aliases == () and candidate.tags["reproduces"] == run_id
    assert [m.name for m in client.models.list_models()] == ["churn"]

    again = _cli(backend_settings, "runs", "reproduce", run_id[:12], "--check")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "candidate churn:3 (no alias set)" in again.stdout
    assert "holdout predictions of churn:1 and churn:3: different" in again.stdout
    assert "registered no model version" not in again.stdout

    # Lineage of the original: the snapshot its run logged.
    original = _cli(backend_settings, "loop", "lineage", "churn:1")
    assert original.returncode == 0, original.stderr
    assert "snapshot:    churn-training:1" in original.stdout
    assert "data:        visits.parquet (300 rows" in original.stdout
    # Lineage of the reproduction: its own pipeline record, the original's source.
    repro = _cli(backend_settings, "loop", "lineage", "churn:2")
    assert repro.returncode == 0, repro.stderr
    lines = repro.stdout
    assert "data:        visits.parquet (300 rows" in lines and "None" not in lines
    assert "snapshot:    churn-training:1" in lines
    assert "pipeline:    train_" in lines and "seed 42" in lines
    assert f"reproduces run {run_id}" in " ".join(lines.split())
    # The reproduction can itself be reproduced.
    new_run = str(body["new_run_id"])
    assert client.datasets.get_pipeline(new_run) is not None

    shown = _cli(backend_settings, "data", "show", "churn-training:1")
    assert shown.returncode == 0, shown.stderr
    assert "source:      visits.parquet" in shown.stdout
    assert "churn:1" in shown.stdout and run_id in shown.stdout


def test_record_pipeline_refuses_data_that_is_not_stored(
    client: shipyard.Shipyard, tmp_path: Path
) -> None:
    entry = _entry_point(tmp_path)
    with shipyard.start_run("churn") as run:
        run.log_dataset(_frame(), snapshot=True)
        for ref, says in (
            ("nope", "'nope', which is not stored"),
            ("churn-training:7", "'churn-training:7', which is not stored"),
            ("churn-training:x", "is not NAME or NAME:VERSION"),
        ):
            with pytest.raises(InvalidInputError, match="snapshots\\['training'\\]") as err:
                record_pipeline(
                    client.datasets, run.id, entry_point=entry,
                    params={"C": 1.0, "target": "churn"}, snapshots={"training": ref},
                )  # fmt: skip
            assert says in str(err.value)
    assert client.datasets.get_pipeline(run.id) is None


def test_old_records_and_runs_without_a_model_get_a_clear_error(
    client: shipyard.Shipyard, backend_settings: Settings, tmp_path: Path
) -> None:
    run_id = _hand_run(client, tmp_path, log_model=False)
    done = _cli(backend_settings, "runs", "reproduce", run_id, "--check")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "registered no model version" in done.stderr
    assert "shipyard.log_model(model, NAME)" in done.stderr
    assert client.models.list_models() == []

    # A record written before bare names were pinned, by a run that logged no snapshot.
    with shipyard.start_run("churn") as run:
        pass
    record = client.datasets.get_pipeline(run_id)
    assert record is not None
    client.datasets.save_pipeline(
        type(record)(
            run.id, record.entry_point, record.code_hash,
            {**record.record, "snapshots": {"training": "churn-training"}},
        )
    )  # fmt: skip
    old = _cli(backend_settings, "runs", "reproduce", run.id, "--check")
    assert old.returncode != 0 and "Traceback" not in old.stderr
    assert "recorded its training data as 'churn-training' with no version" in old.stderr
