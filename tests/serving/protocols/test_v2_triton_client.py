"""Triton's own HTTP client (``tritonclient[http]``) against ``shipyard serve``.

The client sends no Content-Type and uses the binary tensor data extension by
default, in both directions; these tests drive it with FP32, FP64, INT64 and
BYTES inputs, binary and JSON, binary and JSON outputs, and classification
outputs, and compare every answer with the model loaded in-process.

The client runs in its own venv (``bench/.peers/tritonclient``) through
``triton_client_driver.py``. Under CI (``CI=true``) the venv is built on first
use; elsewhere the tests skip until it is built::

    .venv/bin/python bench/_peers.py tritonclient 'tritonclient[http]==2.*'
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import SETOSA, VIRGINICA, IrisRegistry, serve_process, wine_frame

from peers import peer_venv_python

DRIVER = Path(__file__).with_name("triton_client_driver.py")
REQUIREMENTS = ["tritonclient[http]==2.*"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tritonclient")]


@pytest.fixture(scope="module")
def triton_python() -> Path:
    return peer_venv_python("tritonclient", REQUIREMENTS)


def drive(python: Path, url: str, cases: list[dict]) -> dict:
    done = subprocess.run(
        [str(python), str(DRIVER), url.removeprefix("http://")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def servers(shared_iris: IrisRegistry) -> Iterator[dict[str, str]]:
    started = [serve_process(shared_iris, "iris"), serve_process(shared_iris, "wine")]
    try:
        for server in started:
            server.wait_ready()
        yield {"iris": started[0].url, "wine": started[1].url}
    finally:
        for server in started:
            server.stop()


IRIS_ROWS = [list(SETOSA.values()), list(VIRGINICA.values())]


def _iris_input(datatype: str, binary: bool) -> dict:
    return {"name": "input-0", "datatype": datatype, "values": IRIS_ROWS, "binary": binary}


@pytest.mark.parametrize(
    ("datatype", "binary_in", "outputs"),
    [
        ("FP32", True, None),  # the client's defaults: binary both ways
        ("FP64", True, None),
        ("FP32", False, None),
        ("FP64", False, [{"name": "predict", "binary": False}]),
        (
            "FP32",
            True,
            [{"name": "predict", "binary": False}, {"name": "predict_proba", "binary": True}],
        ),
        ("FP64", False, [{"name": "predict_proba", "binary": False}]),
    ],
    ids=["fp32-binary", "fp64-binary", "fp32-json-in", "fp64-json", "mixed-out", "proba-json"],
)
def test_iris_matrix_both_ways(
    triton_python: Path,
    servers: dict[str, str],
    shared_iris: IrisRegistry,
    datatype: str,
    binary_in: bool,
    outputs: list[dict] | None,
) -> None:
    report = drive(
        triton_python,
        servers["iris"],
        [{"model": "iris", "inputs": [_iris_input(datatype, binary_in)], "outputs": outputs}],
    )
    assert report["live"] and report["ready"] and report["model_ready"]
    assert report["server_metadata"]["extensions"] == ["binary_tensor_data", "classification"]
    (case,) = report["cases"]
    assert "error" not in case, case
    model = shared_iris.client.registry.load("iris")
    frame = np.array(IRIS_ROWS, dtype=np.float64)
    wanted = [o["name"] for o in outputs] if outputs else ["predict", "predict_proba"]
    by_name = {o["name"]: o for o in case["response"]["outputs"]}
    assert list(by_name) == wanted
    for name in wanted:
        binary = outputs is None or next(o["binary"] for o in outputs if o["name"] == name)
        parameters = by_name[name].get("parameters", {})
        assert ("binary_data_size" in parameters) is binary, by_name[name]
        assert ("data" in by_name[name]) is not binary
    if "predict" in wanted:
        assert case["arrays"]["predict"] == model.predict(frame).tolist()
        assert by_name["predict"]["datatype"] == "BYTES"
    if "predict_proba" in wanted:
        got = np.array(case["arrays"]["predict_proba"])
        assert got.shape == (2, 3)
        # FP32 inputs are the float32 values, as the client sent them.
        sent = frame.astype(np.float32).astype(np.float64) if datatype == "FP32" else frame
        np.testing.assert_allclose(got, model.predict_proba(sent), rtol=1e-12)


def _wine_inputs(frame, binary: bool) -> list[dict]:
    datatypes = {"float": "FP64", "integer": "INT64", "string": "BYTES"}
    kinds = {"alcohol": "float", "malic_acid": "float", "hue": "float"}
    kinds |= {"magnesium": "integer", "proline": "integer", "hue_band": "string"}
    return [
        {
            "name": column,
            "datatype": datatypes[kinds[column]],
            "values": frame[column].tolist(),
            "binary": binary,
        }
        for column in frame.columns
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_wine_columns_of_every_type_and_classification(
    triton_python: Path, servers: dict[str, str], shared_iris: IrisRegistry, binary: bool
) -> None:
    """FP64, INT64 and BYTES tensors, one per column; INT64 labels; top-2 classes."""
    X, _ = wine_frame()
    rows = X.iloc[[0, 60, 130, 177]].reset_index(drop=True)
    outputs = [
        {"name": "predict", "binary": binary},
        {"name": "predict_proba", "binary": binary, "class_count": 2},
    ]
    report = drive(
        triton_python,
        servers["wine"],
        [{"model": "wine", "inputs": _wine_inputs(rows, binary), "outputs": outputs}],
    )
    assert [i["datatype"] for i in report["model_metadata"]["inputs"]] == [
        "FP64",
        "FP64",
        "INT64",
        "INT64",
        "FP64",
        "BYTES",
    ]
    (case,) = report["cases"]
    assert "error" not in case, case
    model = shared_iris.client.registry.load("wine")
    predict, top = case["response"]["outputs"]
    assert predict["datatype"] == "INT64"
    assert case["arrays"]["predict"] == model.predict(rows).tolist()
    assert top["datatype"] == "BYTES" and top["shape"] == [4, 2]
    proba = model.predict_proba(rows)
    cells = np.array(case["arrays"]["predict_proba"]).reshape(4, 2)
    for row, (best, second) in zip(proba, cells, strict=True):
        order = np.argsort(-row)[:2]
        for cell, index in ((best, order[0]), (second, order[1])):
            value, position, label = cell.split(":")
            assert (int(position), label) == (index, str(index))
            assert float(value) == pytest.approx(row[index], rel=1e-12)


def test_client_errors_name_the_input(triton_python: Path, servers: dict[str, str]) -> None:
    X, _ = wine_frame()
    rows = X.iloc[:2].reset_index(drop=True)
    inputs = _wine_inputs(rows, True)
    inputs[0] = {**inputs[0], "datatype": "BYTES", "values": ["13.2", "12.1"]}  # alcohol
    report = drive(
        triton_python,
        servers["wine"],
        [
            {"model": "wine", "inputs": inputs, "outputs": None},
            {"model": "nope", "inputs": _wine_inputs(rows, True), "outputs": None},
            {
                "model": "wine",
                "inputs": _wine_inputs(rows, True),
                "outputs": [{"name": "predict", "binary": True, "class_count": 2}],
            },
        ],
    )
    wrong_type, unknown_model, bad_classification = report["cases"]
    assert wrong_type["status"] == "400" and "alcohol" in wrong_type["error"]
    assert unknown_model["status"] == "404" and "nope" in unknown_model["error"]
    assert bad_classification["status"] == "400"
    assert "predict_proba" in bad_classification["error"]
