"""``shipyard predict --workers / --cluster``: the chunk scorer on a real Dask cluster.

Most tests submit to one Dask scheduler with two worker processes started for the
module (``--cluster``); one starts its own local cluster (``--workers``), and the
killed-worker test runs the real ``shipyard`` executable and SIGKILLs one of
its worker processes mid-job.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestClassifier
from typer.testing import CliRunner

from services import new_bucket, s3_client
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.quickstart import iris_frame

SHIPYARD = Path(sys.executable).with_name("shipyard")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding iris:1, a small random forest."""
    home = tmp_path_factory.mktemp("parallel") / "home"
    client = Shipyard(Settings(home=home, user="tester"))
    X, y = iris_frame()
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    version = client.registry.log_model(model, "iris", sample=X)
    client.registry.set_alias("iris", "production", version.version)
    client.close()
    return home


@pytest.fixture
def client(home: Path) -> Iterator[Shipyard]:
    client = Shipyard(Settings(home=home, user="tester"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """An existing Dask scheduler with two single-threaded worker processes."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def elsewhere_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `dask scheduler` and one `dask worker` process, both started in another
    directory than the tests': a relative path means something else there."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    scheduler_file = cwd / "scheduler.json"
    dask = Path(sys.executable).with_name("dask")
    common = {"cwd": cwd, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = [
        subprocess.Popen(
            [dask, "scheduler", "--scheduler-file", scheduler_file, "--no-dashboard",
             "--port", "0", "--host", "127.0.0.1"],
            **common,
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        started.append(
            subprocess.Popen(
                [dask, "worker", "--scheduler-file", scheduler_file, "--nthreads", "1",
                 "--no-dashboard", "--host", "127.0.0.1"],
                **common,
            )
        )  # fmt: skip
        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout="30s") as probe:
            probe.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)


def rows(n: int, seed: int) -> pd.DataFrame:
    X, _ = iris_frame()
    rng = np.random.default_rng(seed)
    picked = X.iloc[rng.integers(0, len(X), n)].reset_index(drop=True)
    return (picked + rng.normal(0, 0.05, picked.shape)).round(3)


def predict(client: Shipyard, *args: str | Path):
    return CliRunner().invoke(app, ["predict", *map(str, args)], obj=client)


def staging_left(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".shipyard-" in p.name]


def test_a_partitioned_dataset_on_an_existing_cluster(client, scheduler, tmp_path):
    """Hive folders, Parquet and CSV files: one output file per partition, row ids across
    the whole input in path order, rejects from every worker in one file, every scored
    row in the prediction log, and each worker loading the model once."""
    data = tmp_path / "events"
    parts = {
        "day=1/a.parquet": rows(700, 1),
        "day=1/b.parquet": rows(500, 2),
        "day=2/c.csv": rows(400, 3),
        "day=2/d.parquet": rows(600, 4),
    }
    parts["day=2/c.csv"] = parts["day=2/c.csv"].astype(object)
    parts["day=2/c.csv"].loc[5, "sepal_width"] = "broken"
    for name, frame in parts.items():
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".csv"):
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)
    (data / "_SUCCESS").touch()
    (data / "day=1" / ".a.parquet.crc").write_text("not a table")
    out = tmp_path / "scores"
    result = predict(
        client,
        "iris",
        "--input",
        data,
        "--output",
        out,
        "--cluster",
        scheduler,
        "--rejects",
        tmp_path / "rejects.csv",
        "--chunk-size",
        "128",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["partitions"] == 4 and summary["workers"] == 2
    assert "workers will idle" not in result.output
    assert summary["rows_read"] == 2_200 and summary["rows_rejected"] == 1
    assert 1 <= summary["model_loads"] <= 2  # once per worker, not per partition
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "_SUCCESS",
        "day=1/part-00000.parquet",
        "day=1/part-00001.parquet",
        "day=2/part-00002.parquet",
        "day=2/part-00003.parquet",
    ]
    scored = pd.concat(
        [pd.read_parquet(out / f) for f in files if f.endswith(".parquet")], ignore_index=True
    )
    expected_ids = [i for i in range(2_200) if i != 1_200 + 5]
    assert scored["row_id"].tolist() == expected_ids
    everything = pd.concat(
        [f.apply(pd.to_numeric, errors="coerce") for f in parts.values()], ignore_index=True
    ).drop(index=1_205)
    model = client.registry.load("iris")
    assert scored["prediction"].tolist() == model.predict(everything).tolist()
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects["row_id"].tolist() == [1_205]
    assert "sepal_width" in rejects["reject_reason"][0]
    logged = client.prediction_log.read("iris")
    mine = logged[logged["request_id"] == summary["job_id"]]
    # Every scored row, from both workers, under its input row number (the reject's
    # number is missing, the rows after it keep theirs).
    assert sorted(mine["row"]) == expected_ids
    assert staging_left(tmp_path) == []


def test_workers_split_one_big_file_into_one_output_file(client, tmp_path):
    """--workers starts a local cluster; a Parquet file is split by row groups and
    --single-file puts the pieces back together, in order."""
    frame = rows(4_000, 7)
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "big.parquet", row_group_size=1_000)
    out = tmp_path / "scores.parquet"
    result = predict(
        client,
        "iris",
        "--input",
        tmp_path / "big.parquet",
        "--output",
        out,
        "--workers",
        "2",
        "--partition-rows",
        "1000",
        "--single-file",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["partitions"] == 4 and summary["workers"] == 2
    assert "workers will idle" not in result.output
    scored = pd.read_parquet(out)
    assert scored["row_id"].tolist() == list(range(4_000))
    model = client.registry.load("iris")
    assert scored["prediction"].tolist() == model.predict(frame).tolist()
    assert staging_left(tmp_path) == []


def test_fewer_partitions_than_workers_is_said(client, tmp_path):
    """A file of one row group (pandas' default up to 1,048,576 rows) is one partition:
    the command says the second worker idles and how to spread the file."""
    rows(500, 3).to_parquet(tmp_path / "small.parquet")
    result = predict(
        client, "iris", "--input", tmp_path / "small.parquet", "--output", tmp_path / "out",
        "--workers", "2", "--partition-rows", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1 partition(s) for 2 workers" in text and "row_group_size" in text


def test_a_strict_failure_leaves_the_old_output_and_no_partial_dataset(client, scheduler, tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    rows(300, 1).to_parquet(data / "a.parquet")
    bad = rows(300, 2).astype(object)
    bad.loc[42, "petal_length"] = "oops"
    bad.to_csv(data / "b.csv", index=False)
    out = tmp_path / "scores"
    out.mkdir()
    (out / "previous.parquet").write_bytes(b"an older output")
    result = predict(
        client, "iris", "--input", data, "--output", out, "--cluster", scheduler, "--strict"
    )
    assert result.exit_code == 1
    # Numbered across the files as the rejects are, and within the file named.
    text = " ".join(result.output.split())
    assert "Row 342 (0-based, numbered across the input's files" in text, text
    assert "row 42 of" in text and "b.csv" in text and "petal_length" in text, text
    assert "Traceback" not in result.output
    assert [p.name for p in out.iterdir()] == ["previous.parquet"]
    assert staging_left(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2", "--cluster", "tcp://127.0.0.1:1"], "not both"),
        (["--workers", "1", "--format", "csv"], "writes Parquet"),
        (["--cluster", "tcp://127.0.0.1:1"], "Cannot reach the Dask scheduler"),
    ],
)
def test_bad_parallel_options_are_one_line_errors(client, tmp_path, extra, message):
    rows(10, 1).to_parquet(tmp_path / "in.parquet")
    result = predict(
        client, "iris", "--input", tmp_path / "in.parquet", "--output", tmp_path / "o", *extra
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_an_empty_folder_is_named(client, tmp_path):
    (tmp_path / "empty").mkdir()
    result = predict(
        client, "iris", "--input", tmp_path / "empty", "--output", tmp_path / "o", "--workers", "1"
    )
    assert result.exit_code == 1
    assert "holds no table file" in result.output


def test_a_glob_of_csv_files_on_s3(home, tmp_path, s3_endpoint, s3_bucket, aws_env, monkeypatch):
    """Workers read s3:// objects with the endpoint from the settings and AWS credentials
    from their environment (a local cluster's workers inherit it)."""
    monkeypatch.setenv("SHIPYARD_S3_ENDPOINT_URL", s3_endpoint)
    s3, bucket = s3_client(s3_endpoint), s3_bucket
    frames = [rows(250, seed) for seed in range(3)]
    for i, frame in enumerate(frames):
        s3.put_object(Bucket=bucket, Key=f"in/part-{i}.csv", Body=frame.to_csv(index=False))
    s3.put_object(Bucket=bucket, Key="in/notes.txt", Body=b"not a table")
    client = Shipyard(Settings(home=home, user="tester"))
    try:
        out = tmp_path / "scores"
        result = predict(
            client,
            "iris",
            "--input",
            f"s3://{bucket}/in/*.csv",
            "--output",
            out,
            "--workers",
            "1",
            "--json",
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["partitions"] == 3
        scored = pd.read_parquet(out)
        assert sorted(scored["row_id"].tolist()) == list(range(750))
        model = client.registry.load("iris")
        expected = model.predict(pd.concat(frames, ignore_index=True)).tolist()
        assert scored.sort_values("row_id")["prediction"].tolist() == expected
    finally:
        client.close()


@pytest.mark.timeout(600)  # a real job on a shared machine: minutes under load
def test_a_worker_killed_mid_job_loses_and_doubles_nothing(home, client, tmp_path):
    """The real executable on a local cluster of two workers; one worker process is
    SIGKILLed once the first partitions are done. Dask runs its partitions again:
    the output and the prediction log hold every row once."""
    data = tmp_path / "in"
    data.mkdir()
    n_files, per_file = 16, 20_000
    for i in range(n_files):
        rows(per_file, i).to_parquet(data / f"part-{i:02d}.parquet")
    out = tmp_path / "scores"
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "tester"}
    command = [SHIPYARD, "predict", "iris", "--input", data, "--output", out]
    job = subprocess.Popen(
        [*command, "--workers", "2", "--chunk-size", "500", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    try:
        deadline = time.monotonic() + 240
        while killed is None and time.monotonic() < deadline and job.poll() is None:
            staging = [p for p in tmp_path.iterdir() if ".shipyard-" in p.name and p.is_dir()]
            done = [f for s in staging for f in s.glob("part-*.parquet")]
            workers = _worker_processes(job.pid)
            if len(done) >= 2 and len(workers) == 2:
                killed = workers[0]
                killed.send_signal(signal.SIGKILL)
            time.sleep(0.05)
        stdout, stderr = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert killed is not None, "the job ended before a worker could be killed"
    assert job.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout[stdout.index("{") :])
    assert summary["rows_read"] == n_files * per_file
    files = sorted(p.name for p in out.iterdir())
    assert files == ["_SUCCESS", *(f"part-{i:05d}.parquet" for i in range(n_files))]
    ids = pd.read_parquet(out)["row_id"]
    assert len(ids) == n_files * per_file and ids.is_unique
    assert sorted(ids.tolist()) == list(range(n_files * per_file))
    assert staging_left(tmp_path) == []
    logged = client.prediction_log.read("iris")
    logged_rows = logged.loc[logged["request_id"] == summary["job_id"], "row"]
    # The killed attempt had logged some of its chunks; only the retry's rows count.
    assert logged_rows.is_unique
    assert sorted(logged_rows.tolist()) == list(range(n_files * per_file))
    log_root = Path(client.prediction_log.store.url)
    assert not [p.name for p in log_root.rglob(f"staged-{summary['job_id']}*")]


def _worker_processes(pid: int) -> list[psutil.Process]:
    """The Dask worker processes of the job: the nannies' spawned children, oldest first."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    workers = []
    for child in children:
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.NoSuchProcess:
            continue
    return sorted(workers, key=lambda p: p.create_time())


def test_progress_counts_rows_across_workers(client, home, scheduler, tmp_path):
    """What the progress bar is fed: rows done on every worker, reported chunk by chunk,
    ending at the input's row count."""
    from distributed import Client

    from shipyard.batch.parallel import score_partitions
    from shipyard.cli.predict import PredictWorkerSetup
    from shipyard.tables.datasets import plan_partitions

    data = tmp_path / "in"
    data.mkdir()
    for i in range(4):
        rows(500, i).to_parquet(data / f"p{i}.parquet")
    plan = plan_partitions(str(data), partition_rows=10_000)
    version = client.registry.resolve("iris")
    setup = PredictWorkerSetup(client.settings, version.ref, f"batch-{uuid.uuid4().hex[:12]}")
    seen: list[tuple[int, int | None]] = []
    with Client(scheduler) as dask:
        summary = score_partitions(
            dask,
            setup,
            plan,
            tmp_path / "out",
            source=str(data),
            model_ref=version.ref,
            chunk_size=100,
            progress=lambda done, total: seen.append((done, total)),
        ).summary
    assert summary.rows_read == 2_000
    assert seen[0] == (0, 2_000) and seen[-1] == (2_000, 2_000)
    assert {total for _, total in seen} == {2_000}
    done = [d for d, _ in seen]
    assert done == sorted(done)  # never counts backwards


@pytest.fixture
def s3_env(
    s3_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, str]]:
    """AWS settings for the shared S3 server in the environment (a local cluster's
    workers inherit them) and a fresh bucket; yields (boto3 client, bucket)."""
    monkeypatch.setenv("SHIPYARD_S3_ENDPOINT_URL", s3_endpoint)
    yield s3_client(s3_endpoint), new_bucket(s3_endpoint, "scores")


def keys(s3: Any, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def read_object(s3: Any, bucket: str, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_an_s3_output_is_published_with_its_success_file_last(home, tmp_path, s3_env):
    """--workers 2 to s3://: one object per partition, the old dataset's objects gone,
    _SUCCESS listing the files and their rows, rejects from every worker in the local
    rejects file, every scored row in the prediction log, no staging object left."""
    s3, bucket = s3_env
    s3.put_object(Bucket=bucket, Key="scores/part-00009.parquet", Body=b"an older output")
    s3.put_object(Bucket=bucket, Key="scores/_SUCCESS", Body=b"{}")
    data = tmp_path / "in"
    data.mkdir()
    frames = [rows(300, seed) for seed in range(3)]
    frames[1] = frames[1].astype(object)
    frames[1].loc[7, "petal_width"] = "wide"
    for i, frame in enumerate(frames):
        if i == 1:
            frame.to_csv(data / f"p{i}.csv", index=False)
        else:
            frame.to_parquet(data / f"p{i}.parquet")
    client = Shipyard(Settings(home=home, user="tester"))
    try:
        result = predict(
            client, "iris", "--input", data, "--output", f"s3://{bucket}/scores/",
            "--workers", "2", "--rejects", tmp_path / "rejects.csv", "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert (summary["rows_read"], summary["rows_rejected"]) == (900, 1)
        assert keys(s3, bucket) == [
            "scores/_SUCCESS",
            "scores/part-00000.parquet",
            "scores/part-00001.parquet",
            "scores/part-00002.parquet",
        ]
        manifest = json.loads(s3.get_object(Bucket=bucket, Key="scores/_SUCCESS")["Body"].read())
        assert manifest["files"] == [
            {"path": "part-00000.parquet", "rows": 300},
            {"path": "part-00001.parquet", "rows": 299},
            {"path": "part-00002.parquet", "rows": 300},
        ]
        assert manifest["rows"] == 899
        scored = pd.concat(
            [read_object(s3, bucket, f"scores/part-0000{i}.parquet") for i in range(3)],
            ignore_index=True,
        )
        assert scored["row_id"].tolist() == [i for i in range(900) if i != 307]
        good = pd.concat(
            [f.apply(pd.to_numeric, errors="coerce") for f in frames], ignore_index=True
        ).drop(index=307)
        assert scored["prediction"].tolist() == client.registry.load("iris").predict(good).tolist()
        rejects = pd.read_csv(tmp_path / "rejects.csv")
        assert rejects["row_id"].tolist() == [307]
        assert "petal_width" in rejects["reject_reason"][0]
        logged = client.prediction_log.read("iris")
        mine = logged[logged["request_id"] == summary["job_id"]]
        assert len(mine) == 899 and mine["row"].is_unique
    finally:
        client.close()


def test_a_failed_s3_job_leaves_the_old_output_and_no_staging(home, tmp_path, s3_env):
    s3, bucket = s3_env
    s3.put_object(Bucket=bucket, Key="scores/part-00000.parquet", Body=b"an older output")
    s3.put_object(Bucket=bucket, Key="scores/_SUCCESS", Body=b"{}")
    data = tmp_path / "in"
    data.mkdir()
    rows(200, 1).to_parquet(data / "a.parquet")
    bad = rows(200, 2).astype(object)
    bad.loc[12, "sepal_length"] = "long"
    bad.to_csv(data / "b.csv", index=False)
    client = Shipyard(Settings(home=home, user="tester"))
    try:
        result = predict(
            client, "iris", "--input", data, "--output", f"s3://{bucket}/scores",
            "--workers", "1", "--strict",
        )  # fmt: skip
    finally:
        client.close()
    assert result.exit_code == 1
    assert "Row 212" in result.output and "sepal_length" in result.output
    assert "Traceback" not in result.output
    assert keys(s3, bucket) == ["scores/_SUCCESS", "scores/part-00000.parquet"]
    old = s3.get_object(Bucket=bucket, Key="scores/part-00000.parquet")["Body"].read()
    assert old == b"an older output"


def test_a_single_file_on_s3_replaces_the_old_object(home, tmp_path, s3_env):
    s3, bucket = s3_env
    s3.put_object(Bucket=bucket, Key="out/scores.parquet", Body=b"an older output")
    frame = rows(3_000, 5)
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "big.parquet", row_group_size=1_000)
    client = Shipyard(Settings(home=home, user="tester"))
    try:
        result = predict(
            client, "iris", "--input", tmp_path / "big.parquet",
            "--output", f"s3://{bucket}/out/scores.parquet", "--workers", "1",
            "--partition-rows", "1000", "--single-file", "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["partitions"] == 3
        assert keys(s3, bucket) == ["out/scores.parquet"]
        scored = read_object(s3, bucket, "out/scores.parquet")
        assert scored["row_id"].tolist() == list(range(3_000))
        expected = client.registry.load("iris").predict(frame).tolist()
        assert scored["prediction"].tolist() == expected
    finally:
        client.close()


@pytest.mark.parametrize(
    ("input_name", "extra", "message"),
    [
        ("in.parquet", [], "add --workers N"),
        ("in.parquet", ["--workers", "1", "--rejects", "s3://b/rejects.csv"], "written locally"),
        ("s3://b/data/scores/in/", ["--workers", "1"], "must be outside --input"),
    ],
)
def test_bad_s3_output_options_are_one_line_errors(client, tmp_path, input_name, extra, message):
    rows(10, 1).to_parquet(tmp_path / "in.parquet")
    source = input_name if "://" in input_name else str(tmp_path / input_name)
    result = predict(client, "iris", "--input", source, "--output", "s3://b/data/scores", *extra)
    assert result.exit_code != 0
    assert message in flat(result.output)
    assert "Traceback" not in result.output


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def _log_files(client: Shipyard) -> list[str]:
    """Every file under the prediction log's predictions folder, staged ones included."""
    root = Path(client.prediction_log.store.url) / "predictions"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_failed_parallel_job_leaves_the_log_as_it_was(client, tmp_path):
    """--workers 2 over a folder where one file lacks a column: the job fails, and the
    rows the other partition scored (and logged) are not counted anywhere."""
    data = tmp_path / "in"
    data.mkdir()
    rows(3_000, 1).to_parquet(data / "a.parquet")
    rows(300, 2).drop(columns="petal_width").to_parquet(data / "b.parquet")
    before = _log_files(client)
    window = len(client.prediction_log.read("iris", since="1h"))
    result = predict(
        client, "iris", "--input", data, "--output", tmp_path / "scores", "--workers", "2",
        "--chunk-size", "200",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "petal_width" in flat(result.output) and "b.parquet" in flat(result.output)
    assert _log_files(client) == before
    assert len(client.prediction_log.read("iris", since="1h")) == window
    assert not (tmp_path / "scores").exists()
    # A bad output folder fails before any worker starts, and logs nothing either.
    missing = predict(
        client, "iris", "--input", data, "--output", tmp_path / "no_such_dir" / "scores",
        "--workers", "2",
    )  # fmt: skip
    assert missing.exit_code == 1
    assert "does not exist" in flat(missing.output) and "no_such_dir" in flat(missing.output)
    assert _log_files(client) == before


def test_strict_names_the_first_bad_row_in_input_order_across_partitions(
    client, scheduler, tmp_path
):
    """The second file's bad row is found first (its partition is small); --strict still
    names the first file's, which comes first in the input."""
    data = tmp_path / "in"
    data.mkdir()
    first = rows(20_000, 1).astype(object)
    first.loc[19_000, "sepal_length"] = "long"
    first.to_csv(data / "a.csv", index=False)
    second = rows(50, 2).astype(object)
    second.loc[1, "petal_length"] = "oops"
    second.to_csv(data / "b.csv", index=False)
    result = predict(
        client, "iris", "--input", data, "--output", tmp_path / "scores", "--cluster", scheduler,
        "--strict", "--chunk-size", "100",
    )  # fmt: skip
    assert result.exit_code == 1
    text = flat(result.output)
    assert "Row 19000 (0-based) of" in text and "a.csv" in text and "sepal_length" in text, text
    assert "b.csv" not in text


@pytest.mark.parametrize("form", ["batch/events", "./batch/events", "batch/events/"])
def test_relative_paths_on_workers_in_another_directory(
    client, elsewhere_scheduler, tmp_path, monkeypatch, form
):
    """A relative --input keeps its key=value folders in the output, and a relative
    --output is written where the user meant, though the worker runs elsewhere."""
    data = tmp_path / "batch" / "events"
    for name, seed in (("day=1/a.parquet", 1), ("day=2/b.parquet", 2)):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        rows(100, seed).to_parquet(data / name)
    monkeypatch.chdir(tmp_path)
    result = predict(
        client, "iris", "--input", form, "--output", "scores", "--cluster", elsewhere_scheduler,
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    files = sorted(
        str(p.relative_to(tmp_path / "scores")) for p in (tmp_path / "scores").rglob("*")
    )
    assert files == [
        "_SUCCESS", "day=1", "day=1/part-00000.parquet", "day=2", "day=2/part-00001.parquet"
    ]  # fmt: skip
    assert staging_left(tmp_path) == []
