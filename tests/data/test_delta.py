"""Delta Lake sources: a version pins the table's Delta version and reads it back, uncopied."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from deltalake import write_deltalake
from sklearn.datasets import load_wine
from typer.testing import CliRunner

from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.errors import IntegrityError, TableError


def _table(uri: str, options: dict[str, str] | None = None) -> pd.DataFrame:
    frame = load_wine(as_frame=True).frame
    write_deltalake(uri, frame.iloc[:100], storage_options=options)  # version 0
    write_deltalake(uri, frame.iloc[100:], mode="append", storage_options=options)  # version 1
    return frame


def test_local_delta_table_at_a_version(client: Shipyard, tmp_path: Path) -> None:
    uri = str(tmp_path / "wine_delta")
    frame = _table(uri)
    newest = client.data.snapshot(uri, name="wine")  # a folder with _delta_log
    pinned = CliRunner().invoke(
        app,
        ["data", "snapshot", uri, "--name", "wine", "--delta-version", "0", "--json"],
        obj=client,
    )
    assert pinned.exit_code == 0, pinned.output

    assert newest.delta == {"uri": uri, "version": 1} and newest.n_rows == 178
    old = client.data.resolve("wine:2")
    assert old.delta == {"uri": uri, "version": 0} and old.n_rows == 100
    assert old.total_bytes == 0  # nothing copied into the artifact store
    back = client.data.read("wine:2").sort_values("proline", kind="stable")
    want = frame.iloc[:100].sort_values("proline", kind="stable")
    pd.testing.assert_frame_equal(back.reset_index(drop=True), want.reset_index(drop=True))
    assert client.data.read("wine:1").shape == frame.shape
    later = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    as_of = CliRunner().invoke(
        app, ["data", "snapshot", uri, "--name", "wine", "--as-of", later, "--json"], obj=client
    )
    assert as_of.exit_code == 0, as_of.output
    assert json.loads(as_of.output)["details"]["delta"]["version"] == 1

    # Rewriting history under the pin is caught, not silently read.
    write_deltalake(uri, frame.iloc[:5], mode="overwrite")
    for log in (Path(uri) / "_delta_log").glob("00000000000000000000.json"):
        log.unlink()
    with pytest.raises((IntegrityError, TableError)):
        client.data.read("wine:2")


def test_delta_table_on_s3(client: Shipyard, request: pytest.FixtureRequest) -> None:
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    request.getfixturevalue("aws_env")
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    uri = f"s3://{bucket}/delta"
    frame = _table(uri, options)
    from shipyard.data.snapshots import DataVersions

    data = DataVersions(
        client.datasets,
        client.artifacts,
        actor="tester",
        storage_options={"client_kwargs": {"endpoint_url": endpoint}},
    )
    version = data.snapshot(uri, name="wine", delta=True, delta_version=0)
    assert version.delta == {"uri": uri, "version": 0} and version.n_rows == 100
    assert len(data.read(version)) == 100
    assert data.snapshot(uri, name="wine", delta=True).n_rows == len(frame)
