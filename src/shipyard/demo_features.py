"""The demo's feature-store act: define, apply, build a training set, train, materialize,
serve by entity id, check skew. On generated driver statistics of the last two days.

A model that takes a ``driver_id`` and looks its features up: the training set
is point-in-time correct (no label leakage), the same values are served online,
and the skew check compares what was served with a training set rebuilt for
the same drivers and times.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from shipyard._client import Shipyard
from shipyard.errors import ShipyardError
from shipyard.features.examples import definitions_yaml, driver_stats
from shipyard.features.service import FeatureSet
from shipyard.features.skew import feature_skew

MODEL = "eta"
FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips"]
REFS = [f"driver_stats:{f}" for f in FEATURES]


def driver_data(folder: Path, *, drivers: int = 100, seed: int = 14) -> pd.DataFrame:
    """Hourly statistics of the last 48 hours, and labelled trips at random times."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range(end=pd.Timestamp.now(tz="UTC").floor("h"), periods=48, freq="h")
    stats = driver_stats(drivers, len(hours), seed=seed, start=hours[0], keep=1.0)
    stats.to_parquet(folder / "driver_stats.parquet", index=False)
    (folder / "features.yaml").write_text(definitions_yaml("driver_stats.parquet", "1d"))
    trips = pd.DataFrame(
        {
            "driver_id": rng.integers(1001, 1001 + drivers, 2000),
            "event_timestamp": hours[0] + pd.to_timedelta(rng.integers(0, 47 * 3600, 2000), "s"),
        }
    )
    return trips


def feature_act(client: Shipyard, folder: Path, say: Callable[[str], None]) -> tuple[str, Path]:
    """Run the act; returns its outcome line and the skew report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    trips = driver_data(folder)
    features = client.features
    applied = features.apply(folder / "features.yaml")
    changes = ", ".join(f"{c.kind} {c.name} v{c.new_version}" for c in applied.changes)
    say(f"features apply: {changes}")
    with client.tracker.start_run(MODEL) as run:
        train = features.training_set(trips, REFS)
        train = train.dropna()
        # The trip was on time when the driver converts and accepts (what the model learns).
        label = (train["conv_rate"] * train["acc_rate"] > 0.25).astype(int)
        X = train[FEATURES].astype("float64")
        model = LogisticRegression().fit(X, label)
        version = client.registry.log_model(
            model, MODEL, sample=X.head(100), run_id=run.id, features=run.features
        )
        assert run.features is not None
        client.feature_store.add_consumers(MODEL, version.version, run.features["views"])
    [done] = features.materialize()
    say(f"training set: {len(train)} rows; materialized {done.written} drivers")
    drivers = trips["driver_id"].head(40).tolist()
    with _server(client, version.ref, folder) as url, httpx.Client(base_url=url) as http:
        first = http.post("/predict", json={"driver_id": int(drivers[0])})
        first.raise_for_status()
        say(f"POST {url}/predict {{'driver_id': {drivers[0]}}} -> {first.json()}")
        for driver in drivers[1:]:
            http.post("/predict", json={"driver_id": int(driver)}).raise_for_status()
    logged = _wait_logged(client, version.version, len(drivers))
    report = folder / "feature-skew.html"
    skew = feature_skew(
        features,
        logged,
        FeatureSet.from_dict(run.features),
        html=report,
    )
    equal = min(skew.equal_share.values())
    verdict = "skew" if skew.skewed else "no skew"
    outcome = (
        f"{version.ref} by driver_id -> {first.json()['prediction']}; {verdict} over "
        f"{skew.rows} served rows ({equal:.0%} equal to offline)"
    )
    return outcome, report


def _wait_logged(client: Shipyard, version: int, rows: int, timeout: float = 60.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout
    while True:
        logged = client.prediction_log.read(MODEL, since="10m", version=version)
        if len(logged) >= rows:
            return logged
        if time.monotonic() > deadline:
            raise ShipyardError(f"The {MODEL} server's prediction log did not reach {rows} rows.")
        time.sleep(0.2)


@contextlib.contextmanager
def _server(client: Shipyard, ref: str, folder: Path) -> Iterator[str]:
    """``shipyard serve REF`` in a child process on a free port, stopped on the way out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = client.settings
    env = {
        **os.environ,
        "SHIPYARD_HOME": str(settings.home.resolve()),
        "SHIPYARD_DB": settings.database_url,
        "SHIPYARD_ARTIFACTS": settings.artifact_url,
    }
    env.pop("SHIPYARD_ONLINE_STORE", None)  # the demo's own SQLite online store
    log = (folder / "server.log").open("w")
    command = [
        sys.executable, "-m", "shipyard.cli", "serve", ref,
        "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise ShipyardError(f"The {ref} server exited with status {proc.returncode}.")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise ShipyardError(f"The {ref} server was not ready within 120 s.")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
