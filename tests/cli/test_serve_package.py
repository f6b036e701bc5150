"""``shipyard package`` then ``shipyard serve DIR`` from a fresh home: what a container runs.

Every test here drives the real ``shipyard`` executable: the package is written
by ``shipyard package``, served by a ``shipyard serve`` process whose
``SHIPYARD_HOME`` has never seen the registry it came from (the container's
``ENTRYPOINT``), and asked for predictions over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.loop.examples import iris_frame

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
pytestmark = pytest.mark.slow


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return {**env, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "tester", **extra}


def _cli(home: Path, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SHIPYARD, *map(str, args)],
        env=_env(home),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _package(home: Path, ref: str, out: Path) -> Path:
    """``shipyard package REF --out OUT``; returns the model package folder in it."""
    done = _cli(home, "package", ref, "--out", out, "--shipyard-requirement", "shipyard==0.1.0")
    assert done.returncode == 0, done.stderr
    return out / "model"


@contextlib.contextmanager
def _serving(home: Path, *args: str | Path, cwd: Path | None = None) -> Iterator[str]:
    """A real ``shipyard serve ...`` process; yields its URL once /ready answers."""
    from live_server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [SHIPYARD, "serve", *map(str, args), "--port", str(port), "--log-level", "warning"],
        env=_env(home),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.terminate()
                raise AssertionError(proc.communicate(timeout=30)[0])
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        with contextlib.suppress(ProcessLookupError):  # the group this test started
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _predict(url: str, record: dict[str, float]) -> dict:
    answer = httpx.post(url + "/predict", json=record, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wine(home: Path, *, in_run: bool = True, **log: object) -> tuple[dict[str, float], object]:
    """wine:N logged as the README's Python API does (inside start_run unless told
    otherwise); returns a record and the label the model gives it."""
    data = load_wine(as_frame=True)
    X, y = data.data, data.target.map(dict(enumerate(data.target_names)))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    client = shipyard.configure(Settings(home=home, user="tester"))
    try:
        with contextlib.ExitStack() as stack:
            if in_run:
                run = stack.enter_context(shipyard.start_run("wine", name="baseline"))
                run.log_dataset(X.assign(cultivar=y), context="training")
            version = shipyard.log_model(model, "wine", sample=X, alias="production", **log)
        assert (version.run_id is not None) == in_run
        return X.iloc[0].to_dict(), model.predict(X.iloc[[0]])[0]
    finally:
        client.close()


def test_a_version_logged_in_a_run_serves_from_its_package_in_a_fresh_home(
    tmp_path: Path,
) -> None:
    source, fresh = tmp_path / "source-home", tmp_path / "fresh-home"
    record, expected = _wine(source)
    folder = _package(source, "wine", tmp_path / "build" / "wine")

    with _serving(fresh, folder) as url:
        answer = _predict(url, record)
    assert answer["prediction"] == expected
    assert answer["model"] == "wine"
    # The fresh registry knows nothing of the source's run; the version still says where
    # it came from, through the manifest it was registered from.
    client = Shipyard(Settings(home=fresh, user="tester"))
    [version] = client.models.list_versions("wine")
    assert version.run_id is None
    assert client.registry.manifest(version).run_id is not None
    client.close()


def test_a_version_made_by_the_loop_serves_from_its_package_in_a_fresh_home(
    tmp_path: Path,
) -> None:
    source, fresh = tmp_path / "source-home", tmp_path / "fresh-home"
    iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    config = {
        "model": "iris",
        "pipeline": {
            "entry_point": "shipyard.loop.examples:train_iris",
            "params": {"cv": 2},
            "data": {"path": "iris.csv"},
            "target": "species",
        },
        "triggers": [{"kind": "new_data", "min_new_rows": 10}],
        "canary": {"enabled": False},
    }
    (tmp_path / "loop.yaml").write_text(yaml.safe_dump(config))
    ticked = _cli(source, "loop", "tick", "--config", tmp_path / "loop.yaml")
    assert ticked.returncode == 0, ticked.stderr
    assert "iris:1 promoted to production" in ticked.stdout, ticked.stdout
    folder = _package(source, "iris", tmp_path / "build" / "iris")

    record = iris_frame().drop(columns=["species"]).iloc[0].to_dict()
    with _serving(fresh, folder) as url:
        answer = _predict(url, record)
    assert answer["prediction"] == "setosa"
    assert (answer["model"], answer["version"]) == ("iris", 1)


def test_serving_the_same_package_again_reuses_its_version(tmp_path: Path) -> None:
    source, fresh = tmp_path / "source-home", tmp_path / "fresh-home"
    record, expected = _wine(source, in_run=False)
    folder = _package(source, "wine", tmp_path / "build" / "wine")

    for _ in range(2):
        with _serving(fresh, folder) as url:
            assert _predict(url, record)["version"] == 1
    listed = _cli(fresh, "models", "versions", "wine", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count('"version":') == 1, listed.stdout

    # Different bytes (another model under the same name) are a new version.
    data = load_wine(as_frame=True)
    labels = data.target.map(dict(enumerate(data.target_names)))
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(data.data, labels)
    client = shipyard.configure(Settings(home=source, user="tester"))
    shipyard.log_model(forest, "wine", sample=data.data)
    client.close()
    other = _package(source, "wine:2", tmp_path / "build" / "wine-2")
    with _serving(fresh, "--package", other) as url:
        answer = _predict(url, record)
    assert answer["version"] == 2 and answer["prediction"] == expected


def test_a_package_that_cannot_load_is_refused_before_it_is_registered(
    tmp_path: Path,
) -> None:
    source, fresh = tmp_path / "source-home", tmp_path / "fresh-home"
    record, expected = _wine(source, in_run=False, flavor="pyfunc", trusted_pickle=True)
    pickled = _package(source, "wine", tmp_path / "build" / "pickled")
    _wine(source, in_run=False)
    damaged = _package(source, "wine:2", tmp_path / "build" / "damaged")
    model_file = next(p for p in (damaged / "model").iterdir() if p.is_file())
    model_file.chmod(0o644)
    model_file.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")

    for folder, says in [(pickled, "trusted_pickle"), (damaged, model_file.name)]:
        done = _cli(fresh, "serve", folder, "--port", "0")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Error:" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert says in done.stderr, done.stderr
    assert _cli(fresh, "models", "list", "--json").stdout.strip() == "[]"
    # Trusted explicitly, the pickled package serves.
    with _serving(fresh, pickled, "--trusted-pickle") as url:
        assert _predict(url, record)["prediction"] == expected


def test_a_folder_named_like_the_model_does_not_hide_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    record, expected = _wine(home, in_run=False)
    (tmp_path / "wine").mkdir()  # e.g. where the data lives
    (tmp_path / "wine" / "wine.csv").write_text("a,b\n1,2\n")

    with _serving(home, "wine", cwd=tmp_path) as url:
        assert _predict(url, record)["prediction"] == expected

    # A folder that is neither a package nor a model reference gets a message saying so.
    (tmp_path / "build" / "ctx").mkdir(parents=True)
    done = _cli(home, "serve", "build/ctx", "--port", "0", cwd=tmp_path)
    assert done.returncode == 1
    assert "without a shipyard.json" in done.stderr and "model/ folder" in done.stderr


def test_a_package_carries_its_contract_and_drift_reference(tmp_path: Path) -> None:
    """The packaged server checks the version's data contract (--contract-check reject)
    and has its drift reference: `validate data` and `drift --reference wine` work in the
    fresh home, and the reference cannot be swapped for another package's."""
    source, fresh = tmp_path / "source-home", tmp_path / "fresh-home"
    record, expected = _wine(source)
    folder = _package(source, "wine", tmp_path / "build" / "wine")
    assert sorted(p.name for p in (folder / "reference").iterdir()) == [
        "contract.json",
        "drift_profile.parquet",
        "index.json",
    ]
    past_bound = {**record, "alcohol": -5.0}  # below the contract's lower bound, 0
    with _serving(fresh, folder, "--contract-check", "reject") as url:
        assert _predict(url, record)["prediction"] == expected
        refused = httpx.post(url + "/predict", json=past_bound, timeout=30)
    assert refused.status_code == 422, refused.text
    assert "alcohol" in refused.text

    data = load_wine(as_frame=True).data
    data.head(60).to_csv(tmp_path / "held.csv", index=False)
    checked = _cli(fresh, "validate", "data", "wine:1", tmp_path / "held.csv")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shifted = data.head(60).assign(alcohol=data["alcohol"].head(60) + 5, proline=1e5)
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    drift = _cli(fresh, "drift", "--reference", "wine:1", "--current", tmp_path / "shifted.csv")
    assert drift.returncode == 1, drift.stdout + drift.stderr  # 1: the dataset drifted

    # A reference/ edited after packaging is refused before anything is registered.
    (folder / "reference" / "contract.json").chmod(0o644)
    (folder / "reference" / "contract.json").write_text('{"columns": []}')
    other_home = tmp_path / "other-home"
    refused_start = _cli(other_home, "serve", folder, "--port", "0")
    assert refused_start.returncode == 1
    assert "contract.json does not match its checksum" in refused_start.stderr.replace("\n", "")
