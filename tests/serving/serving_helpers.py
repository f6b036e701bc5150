"""Helpers for the serving tests: registered models and real servers on 127.0.0.1.

``LiveServer`` runs uvicorn in a thread on a free port (port 0, read back
after binding); tests talk to it over real HTTP with httpx. Subprocess servers
(SIGTERM, several workers) are started by the tests that need them.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import live_server
from live_server import LiveServer as LiveServer  # re-exported for the suite
from live_server import ServeProcess as ServeProcess
from live_server import free_port as free_port
from live_server import wait_ready as wait_ready
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.quickstart import IRIS_RECORD, iris_frame
from shipyard.serving import ServeOptions, create_app

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
#: Records the LogisticRegression and the RandomForest agree on.
SETOSA = dict(IRIS_RECORD)
VIRGINICA = {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3}


@dataclass
class IrisRegistry:
    """A client whose registry holds iris:1 (LogisticRegression), iris:2 (RandomForest),
    slow:1 (a pyfunc whose latency the request sets) and wine:1 (a pipeline over float,
    integer and string columns, see :func:`wine_frame`); production -> version 1 of each.

    They are registered with ``optimize=False``: these tests check that every route
    carries the model's own answer exactly, so the original model serves them (the
    default ONNX graph, verified to 1e-4, is served in test_runtime.py)."""

    client: Shipyard
    settings: Settings
    logistic: int = 1
    forest: int = 2


def register_models(settings: Settings) -> None:
    X, y = iris_frame()
    client = Shipyard(settings)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    assert client.registry.log_model(logistic, "iris", sample=X, optimize=False).version == 1
    assert client.registry.log_model(forest, "iris", sample=X, optimize=False).version == 2
    client.registry.set_alias("iris", "production", 1)
    sample = pd.DataFrame({"x": [1.0, -1.0], "delay": [0.0, 0.0]})
    client.registry.log_model("serving_slow_model:MODEL", "slow", sample=sample)
    client.registry.set_alias("slow", "production", 1)
    X, y = wine_frame()
    encode = ColumnTransformer(
        [("band", OneHotEncoder(handle_unknown="ignore"), ["hue_band"])],
        remainder=StandardScaler(),
    )
    wine = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y)
    client.registry.log_model(wine, "wine", sample=X, optimize=False)
    client.registry.set_alias("wine", "production", 1)
    client.close()


def wine_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Part of scikit-learn's wine data with float, integer (int64) and string columns."""
    data = load_wine(as_frame=True)
    X = data.data[["alcohol", "malic_acid", "magnesium", "proline", "hue"]].copy()
    X["magnesium"] = X["magnesium"].astype("int64")
    X["proline"] = X["proline"].astype("int64")
    X["hue_band"] = np.where(X["hue"] > 0.95, "pale", "deep")
    return X, data.target


def copy_registry(template: Path, home: Path) -> IrisRegistry:
    shutil.copytree(template, home)
    settings = Settings(home=home, user="tester")
    return IrisRegistry(Shipyard(settings), settings)


def serve(client: Shipyard, ref: str = "iris", **options: object) -> LiveServer:
    """Start a thread server for ``ref`` (polling every 0.1 s unless told otherwise)."""
    opts = ServeOptions(**{"poll_interval": 0.1, **options})  # type: ignore[arg-type]
    return LiveServer(create_app(client, ref, options=opts)).start()


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a server subprocess: these settings, this folder's models importable."""
    return live_server.subprocess_env(settings, importable=HERE)


def serve_process(registry: IrisRegistry, *args: str) -> ServeProcess:
    """``shipyard serve ARGS`` as a process on this registry (not yet waited for)."""
    return ServeProcess(subprocess_env(registry.settings), *args)


@contextlib.contextmanager
def cli_server(settings: Settings, *args: str, timeout: float = 90) -> Iterator[tuple[int, str]]:
    """``shipyard serve ARGS`` (a :class:`ServeProcess`) on ``settings``, ready; yields its
    pid and URL, and stops it, workers included, at the end."""
    server = ServeProcess(subprocess_env(settings), *args)
    try:
        server.wait_ready(timeout)
        yield server.proc.pid, server.url
    finally:
        server.stop()
