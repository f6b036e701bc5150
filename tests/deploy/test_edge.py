"""``shipyard export REF --target edge``: the bundle's runners answer like ``shipyard serve``.

The Python runner runs in a fresh virtualenv holding only onnxruntime and numpy; the
browser runner in headless Chromium with every host but 127.0.0.1 cut off.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from typer.testing import CliRunner

from everyday_models import churn, everyday
from live_server import LiveServer
from optimized_models import MAKERS
from peers import load_bench
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.serving import ServeOptions, create_app

#: The device: nothing but the two libraries the runner needs.
RUNNER_REQUIREMENTS = ["onnxruntime==1.32.0", "numpy==2.4.6"]


@pytest.fixture
def client(settings: Settings) -> Iterator[Shipyard]:
    c = Shipyard(settings)
    yield c
    c.close()


@pytest.fixture(scope="module")
def device_python() -> Path:
    peers = load_bench("_peers")  # always built: the runner's venv is small
    python = Path(peers.peer_python(peers.ensure_peer_venv("edge-runner", RUNNER_REQUIREMENTS)))
    # A device without Shipyard, pandas or scikit-learn.
    for module in ("shipyard", "pandas", "sklearn"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"{module} is importable in the runner's virtualenv"
    return python


class _Majority(ClassifierMixin, BaseEstimator):
    """A home-made classifier: no ONNX converter knows it."""

    def fit(self, X: pd.DataFrame, y: pd.Series) -> _Majority:
        values, counts = np.unique(y, return_counts=True)
        self.classes_ = values
        self.majority_ = values[np.argmax(counts)]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self.majority_)


def _cli(client: Shipyard, *args: str) -> Any:
    from shipyard.cli.main import app

    return CliRunner().invoke(app, list(args), obj=client)


def _served(client: Shipyard, name: str, rows: pd.DataFrame) -> dict[str, Any]:
    """What `shipyard serve` answers for ``rows`` (the production version of ``name``)."""
    app = create_app(client, name, options=ServeOptions(prediction_log=False))
    server = LiveServer(app).start()
    try:
        answers: dict[str, list[Any]] = {"predictions": [], "probabilities": []}
        records = json.loads(rows.to_json(orient="records"))
        with server.client() as http:
            for start in range(0, len(records), 300):  # under the server's body limit
                response = http.post("/predict", json=records[start : start + 300])
                assert response.status_code == 200, response.text
                for key in answers:
                    answers[key].extend(response.json()[key])
        return answers
    finally:
        server.stop()


class _Folder(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@functools.cache
def _handler(folder: str) -> type:
    return type("Handler", (_Folder,), {"__init__": _init_for(folder)})


def _init_for(folder: str) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        http.server.SimpleHTTPRequestHandler.__init__(self, *args, directory=folder, **kwargs)

    return __init__


def _static_server(folder: Path) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _probabilities(items: list[dict[str, Any]], classes: list[str]) -> np.ndarray:
    return np.array([[item[c] for c in classes] for item in items], dtype=np.float64)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("kind", list(MAKERS))
def test_edge_runners_answer_like_serve_on_the_reference_sample(
    client: Shipyard, tmp_path: Path, kind: str, device_python: Path, offline_page: Any
) -> None:
    model, X_train, _, _ = MAKERS[kind]()
    version = client.registry.log_model(model, kind, sample=X_train)
    client.registry.set_alias(kind, "production", version.version)
    sample = client.registry.reference_sample(version)
    assert sample is not None
    out = tmp_path / "bundle"
    done = _cli(client, "export", kind, "--target", "edge", "--out", str(out))
    assert done.exit_code == 0, done.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ref"] == f"{kind}:1" and manifest["files"]
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    served = _served(client, kind, sample)
    classes = [str(c) for c in manifest["signature"]["output"]["classes"]]
    expected = _probabilities(served["probabilities"], classes)

    # The Python runner on the device: CSV and JSON lines give the same answers.
    sample.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "rows.jsonl").write_text(sample.to_json(orient="records", lines=True))
    for rows in ("rows.csv", "rows.jsonl"):
        ran = subprocess.run(
            [str(device_python), str(out / "predict.py"), str(tmp_path / rows)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        items = [json.loads(line) for line in ran.stdout.splitlines()]
        assert [i["prediction"] for i in items] == served["predictions"], rows
        got = _probabilities([i["probabilities"] for i in items], classes)
        np.testing.assert_allclose(got, expected, atol=1e-5)

    # The browser runner: the page and onnxruntime-web come from the bundle on 127.0.0.1.
    static = _static_server(out)
    try:
        page = offline_page.page
        page.goto(f"http://127.0.0.1:{static.server_address[1]}/index.html")
        page.wait_for_function("document.body.dataset.ready", timeout=120_000)
        assert page.evaluate("document.body.dataset.ready") == "true", page.text_content("#status")
        # A CSV given to the page (as a dropped file is) is scored in the page.
        page.set_input_files("#file", str(tmp_path / "rows.csv"))
        page.wait_for_selector("#predictions", timeout=60_000)
        labels = page.eval_on_selector_all(
            "#predictions td[data-prediction]",
            "cells => cells.map(c => JSON.parse(c.dataset.prediction))",
        )
        assert labels == served["predictions"]
        scored = page.evaluate(
            "async (text) => window.shipyardEdge.scoreRecords(window.shipyardEdge.parseCsv(text))",
            (tmp_path / "rows.csv").read_text(),
        )
        got = _probabilities([i["probabilities"] for i in scored], classes)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        # A record typed into the form.
        first = sample.iloc[0]
        for column in manifest["signature"]["inputs"]:
            field = page.locator(f'#record [name="{column["name"]}"]')
            value = str(first[column["name"]])
            if column.get("categories"):
                field.select_option(value)
            else:
                field.fill(value)
        page.click("#score")
        page.wait_for_function("document.getElementById('result').dataset.prediction")
        typed = json.loads(page.get_attribute("#result", "data-prediction") or "null")
        assert typed == served["predictions"][0]
    finally:
        static.shutdown()
    assert offline_page.blocked == [] and offline_page.errors == []


@pytest.mark.slow
def test_bad_rows_are_refused_by_the_python_runner(
    client: Shipyard, tmp_path: Path, device_python: Path
) -> None:
    model, X_train, _, _ = MAKERS["pipeline"]()
    client.registry.log_model(model, "wine", sample=X_train)
    out = tmp_path / "bundle"
    assert _cli(client, "export", "wine:1", "--out", str(out)).exit_code == 0
    good = json.loads(X_train.head(1).to_json(orient="records"))[0]
    cases = {
        "missing": (
            {k: v for k, v in good.items() if k != "hue"},
            "row 1: column 'hue' is missing",
        ),
        "text": ({**good, "hue": "pale"}, "row 1: column 'hue': expected a number, got 'pale'"),
    }
    for name, (row, expected) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        ran = subprocess.run(
            [str(device_python), str(out / "predict.py"), str(path)], capture_output=True, text=True
        )
        assert ran.returncode == 1, name
        assert ran.stderr.strip() == f"Error: {expected}", ran.stderr
        assert "Traceback" not in ran.stderr
    # A reader that stops early (`predict.py rows | head -1`) is no error, no traceback.
    many = tmp_path / "many.jsonl"
    many.write_text((json.dumps(good) + "\n") * 20_000)
    runner = subprocess.Popen(
        [str(device_python), str(out / "predict.py"), str(many)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert runner.stdout is not None and runner.stderr is not None
    assert json.loads(runner.stdout.readline())["prediction"] is not None
    runner.stdout.close()  # the pipe's reader is gone, as when `head` exits
    stderr = runner.stderr.read().decode()
    assert runner.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    # A graph changed after export is refused against the manifest's checksum.
    path = tmp_path / "good.jsonl"
    path.write_text(json.dumps(good) + "\n")
    with (out / "model.onnx").open("ab") as f:
        f.write(b"\0")
    ran = subprocess.run(
        [str(device_python), str(out / "predict.py"), str(path)], capture_output=True, text=True
    )
    assert ran.returncode == 1
    assert "model.onnx does not match its SHA-256 in manifest.json" in ran.stderr


def test_a_model_that_cannot_be_compiled_is_refused_with_the_reason(
    client: Shipyard, tmp_path: Path
) -> None:
    from shipyard.quickstart import iris_frame

    X, y = iris_frame()
    client.registry.log_model(_Majority().fit(X, y), "custom", sample=X, trusted_pickle=True)
    out = tmp_path / "bundle"
    done = _cli(client, "export", "custom:1", "--out", str(out), "--trusted-pickle")
    assert done.exit_code == 1
    message = " ".join(done.stderr.split())
    assert "custom:1 cannot be compiled to an ONNX graph" in message
    assert "_Majority" in message and "Traceback" not in done.output
    assert not out.exists()


def test_export_without_the_browser_files_says_how_to_install_them(
    client: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shipyard.deploy.edge as edge

    monkeypatch.setattr(edge, "VENDOR_DIR", tmp_path / "no-vendor")
    model, X_train, _, _ = MAKERS["forest"]()
    client.registry.log_model(model, "cancer", sample=X_train)
    done = _cli(client, "export", "cancer:1", "--out", str(tmp_path / "bundle"))
    assert done.exit_code == 1
    message = " ".join(done.stderr.split())
    assert "onnxruntime-web files are not installed" in message and "make edge-web" in message
    assert not (tmp_path / "bundle").exists()


def test_export_refuses_a_full_folder_and_other_targets(client: Shipyard, tmp_path: Path) -> None:
    model, X_train, _, _ = MAKERS["forest"]()
    client.registry.log_model(model, "cancer", sample=X_train)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = _cli(client, "export", "cancer:1", "--out", str(tmp_path / "full"))
    assert done.exit_code == 1 and "already exists and is not empty" in done.stderr
    other = _cli(client, "export", "cancer:1", "--target", "phone", "--out", str(tmp_path / "x"))
    assert other.exit_code == 2 and "--target takes edge" in " ".join(other.output.split())


@pytest.mark.slow
def test_a_quantized_version_exports_and_answers_like_its_server(
    client: Shipyard, tmp_path: Path, device_python: Path
) -> None:
    model, X_train, _, _ = MAKERS["mlp"]()
    client.registry.log_model(model, "digits", sample=X_train)
    assert _cli(client, "optimize", "digits:1", "--quantize", "int8").exit_code == 0
    client.registry.set_alias("digits", "production", 2)
    out = tmp_path / "bundle"
    assert _cli(client, "export", "digits", "--out", str(out)).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["ref"] == "digits:2"
    rows = X_train.head(200)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    ran = subprocess.run(
        [str(device_python), str(out / "predict.py"), str(tmp_path / "rows.csv")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    served = _served(client, "digits", rows)
    assert [json.loads(line)["prediction"] for line in ran.stdout.splitlines()] == served[
        "predictions"
    ]


def _churn(handle_unknown: str, open_text: bool = False) -> tuple[Any, pd.DataFrame]:
    """The README's churn pipeline: a one-hot region plus two numbers (amount nullable)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 120
    regions = [f"town{i}" for i in range(30)] if open_text else ["north", "south", "east"]
    X = pd.DataFrame(
        {
            "tenure": rng.integers(1, 100, n).astype(float),
            "amount": rng.normal(50, 10, n),
            "region": [regions[i % len(regions)] for i in range(n)],
        }
    )
    y = (X["tenure"] > 50).astype(int)
    encoder = OneHotEncoder(handle_unknown=handle_unknown)
    model = Pipeline(
        [
            ("prep", ColumnTransformer([("c", encoder, ["region"])], remainder="passthrough")),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    return model.fit(X, y), X


def _run_bundle(python: Path, bundle: Path, path: Path, text: str) -> subprocess.CompletedProcess:
    path.write_text(text)
    return subprocess.run(
        [str(python), str(bundle / "predict.py"), str(path)], capture_output=True, text=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("open_text", [False, True], ids=["listed", "open-text"])
def test_an_unseen_category_is_the_models_call_in_the_python_runner(
    client: Shipyard, tmp_path: Path, device_python: Path, open_text: bool
) -> None:
    # A strict encoder refuses the value: one line naming the row and the column,
    # whether the signature lists the categories (3 values) or not (30: open text).
    strict, X = _churn("error", open_text)
    client.registry.log_model(strict, "churn-strict", sample=X)
    out = tmp_path / "strict-edge"
    done = _cli(client, "export", "churn-strict:1", "--target", "edge", "--out", str(out))
    assert done.exit_code == 0, done.output
    known = X["region"].iloc[0]
    csv_text = f"tenure,amount,region\n10,45,{known}\n90,45,mars\n"
    ran = _run_bundle(device_python, out, tmp_path / "rows.csv", csv_text)
    assert ran.returncode == 1, ran.stdout
    assert "Traceback" not in ran.stderr and len(ran.stderr.strip().splitlines()) == 1
    assert ran.stderr.startswith("Error: row 2: column 'region': 'mars' "), ran.stderr
    if not open_text:
        assert "is not one of east, north, south" in ran.stderr
    # The refused value on the first row: named the same way.
    first = f"tenure,amount,region\n90,45,mars\n10,45,{known}\n"
    ran = _run_bundle(device_python, out, tmp_path / "first.csv", first)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.startswith("Error: row 1: column 'region': 'mars' "), ran.stderr
    # As `load_model(...).predict` does for the same row.
    from shipyard.errors import SchemaError

    with pytest.raises(SchemaError, match="region"):
        client.registry.load("churn-strict:1").predict(
            pd.DataFrame({"tenure": [90.0], "amount": [45.0], "region": ["mars"]})
        )

    # An encoder that ignores unknown values scores the row, like `shipyard serve`.
    lenient, X = _churn("ignore", open_text)
    client.registry.log_model(lenient, "churn", sample=X)
    out = tmp_path / "edge"
    assert _cli(client, "export", "churn:1", "--target", "edge", "--out", str(out)).exit_code == 0
    ran = _run_bundle(device_python, out, tmp_path / "rows.csv", csv_text)
    assert ran.returncode == 0, ran.stderr
    answers = [json.loads(line) for line in ran.stdout.splitlines()]
    served = client.registry.load("churn:1").predict_proba(
        pd.DataFrame({"tenure": [10.0, 90.0], "amount": [45.0, 45.0], "region": [known, "mars"]})
    )
    got = np.array([[a["probabilities"][c] for c in ("0", "1")] for a in answers])
    np.testing.assert_allclose(got, np.asarray(served), atol=1e-5)


@pytest.mark.slow
def test_nan_and_infinity_are_refused_by_the_python_runner(
    client: Shipyard, tmp_path: Path, device_python: Path
) -> None:
    model, X = _churn("ignore")
    client.registry.log_model(model, "churn", sample=X)
    out = tmp_path / "edge"
    assert _cli(client, "export", "churn:1", "--target", "edge", "--out", str(out)).exit_code == 0
    cases = {
        "rows.csv": [
            (
                "tenure,amount,region\n10,1e400,north\n",
                "row 1: column 'amount': '1e400' is infinity",
            ),
            (
                "tenure,amount,region\n10,45,north\nnan,45,south\n",
                "row 2: column 'tenure': 'nan' is a missing value",
            ),
            ("tenure,amount,region\n-inf,45,north\n", "row 1: column 'tenure': '-inf' is infinity"),
        ],
        "rows.jsonl": [
            (
                '{"tenure": 10, "amount": Infinity, "region": "north"}\n',
                "row 1: column 'amount': inf is infinity",
            ),
            (
                '{"tenure": 10, "amount": 1e400, "region": "north"}\n',
                "row 1: column 'amount': inf is infinity",
            ),
            (
                '{"tenure": NaN, "amount": 45, "region": "north"}\n',
                "row 1: column 'tenure': nan is NaN",
            ),
        ],
    }
    for name, texts in cases.items():
        for text, expected in texts:
            ran = _run_bundle(device_python, out, tmp_path / name, text)
            assert ran.returncode == 1, (text, ran.stdout)
            assert ran.stderr.startswith(f"Error: {expected}"), (text, ran.stderr)
            assert len(ran.stderr.strip().splitlines()) == 1 and ran.stdout == ""


class _Page:
    """An exported bundle's index.html open in the offline Chromium page."""

    def __init__(self, offline_page: Any, bundle: Path) -> None:
        self.offline = offline_page
        self.bundle = bundle

    def __enter__(self) -> Any:
        self.static = _static_server(self.bundle)
        page = self.offline.page
        page.goto(f"http://127.0.0.1:{self.static.server_address[1]}/index.html")
        page.wait_for_function("document.body.dataset.ready", timeout=120_000)
        assert page.evaluate("document.body.dataset.ready") == "true", page.text_content("#status")
        return page

    def __exit__(self, *exc: object) -> None:
        self.static.shutdown()


def _page_answer(page: Any, csv_text: str) -> Any:
    """What the page's runner answers for a CSV: the scored rows, or ``Error: ...``."""
    return page.evaluate(
        """async (text) => {
            try {
                return await window.shipyardEdge.scoreRecords(window.shipyardEdge.parseCsv(text));
            } catch (err) {
                return `Error: ${err.message}`;
            }
        }""",
        csv_text,
    )


def _export(client: Shipyard, model: Any, X: pd.DataFrame, name: str, out: Path) -> Path:
    client.registry.log_model(model, name, sample=X)
    done = _cli(client, "export", f"{name}:1", "--target", "edge", "--out", str(out))
    assert done.exit_code == 0, done.output
    return out


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("open_text", [False, True], ids=["listed", "open-text"])
def test_an_unseen_category_is_the_models_call_in_the_browser_runner(
    client: Shipyard, tmp_path: Path, device_python: Path, offline_page: Any, open_text: bool
) -> None:
    strict, X = _churn("error", open_text)
    out = _export(client, strict, X, "churn-strict", tmp_path / "strict-edge")
    known = X["region"].iloc[0]
    second = f"tenure,amount,region\n10,45,{known}\n90,45,mars\n"
    first = f"tenure,amount,region\n90,45,mars\n10,45,{known}\n"
    with _Page(offline_page, out) as page:
        # A CSV given to the page: one line naming the row and the column, the very
        # line predict.py prints for the same file, never onnxruntime's own message.
        (tmp_path / "rows.csv").write_text(second)
        page.set_input_files("#file", str(tmp_path / "rows.csv"))
        page.wait_for_selector("#batch-status.error", timeout=60_000)
        shown = (page.text_content("#batch-status") or "").strip()
        assert shown.startswith("Error: row 2: column 'region': 'mars' "), shown
        if not open_text:
            assert shown == (
                "Error: row 2: column 'region': 'mars' is not one of east, north, south "
                "(the model cannot handle a value it never saw)"
            )
        else:
            assert "is a value the model never saw and cannot handle" in shown
        assert "OrtRun" not in shown and "ERROR_CODE" not in shown
        assert page.query_selector("#predictions") is None
        ran = _run_bundle(device_python, out, tmp_path / "again.csv", second)
        assert ran.returncode == 1 and ran.stderr.strip() == shown
        # The refused value on the first row: named the same way, by both runners.
        answer = _page_answer(page, first)
        assert answer.startswith("Error: row 1: column 'region': 'mars' "), answer
        ran = _run_bundle(device_python, out, tmp_path / "first.csv", first)
        assert ran.returncode == 1 and ran.stderr.strip() == answer

    # An encoder that ignores unknown values scores the row, like `shipyard serve`.
    lenient, X = _churn("ignore", open_text)
    out = _export(client, lenient, X, "churn", tmp_path / "edge")
    with _Page(offline_page, out) as page:
        (tmp_path / "rows.csv").write_text(second)
        page.set_input_files("#file", str(tmp_path / "rows.csv"))
        page.wait_for_selector("#predictions", timeout=60_000)
        answer = _page_answer(page, second)
    assert not isinstance(answer, str), answer
    served = client.registry.load("churn:1").predict_proba(
        pd.DataFrame({"tenure": [10.0, 90.0], "amount": [45.0, 45.0], "region": [known, "mars"]})
    )
    got = np.array([[a["probabilities"][c] for c in ("0", "1")] for a in answer])
    np.testing.assert_allclose(got, np.asarray(served), atol=1e-5)
    # onnxruntime-web logs nothing of its own on the console for a refused row.
    assert offline_page.blocked == [] and offline_page.errors == []


@pytest.mark.slow
@pytest.mark.browser
def test_nan_infinity_and_missing_values_in_the_browser_runner_as_in_the_python_runner(
    client: Shipyard, tmp_path: Path, device_python: Path, offline_page: Any
) -> None:
    model, X = _churn("ignore")
    out = _export(client, model, X, "churn", tmp_path / "edge")
    head = "tenure,amount,region\n"
    refused = {
        "10,1e400,north\n": "row 1: column 'amount': '1e400' is infinity",
        "10,45,north\nnan,45,south\n": "row 2: column 'tenure': 'nan' is a missing value",
        "-inf,45,north\n": "row 1: column 'tenure': '-inf' is infinity",
        "10,Infinity,north\n": "row 1: column 'amount': 'Infinity' is infinity",
        "10,45,north\n,45,south\n": "row 2: column 'tenure' is empty",
        "0x10,45,north\n": "row 1: column 'tenure': expected a number, got '0x10'",
        "10,45,\n": "row 1: column 'region' is empty",
    }
    with _Page(offline_page, out) as page:
        for rows, expected in refused.items():
            answer = _page_answer(page, head + rows)
            assert isinstance(answer, str) and answer.startswith(f"Error: {expected}"), answer
            ran = _run_bundle(device_python, out, tmp_path / "rows.csv", head + rows)
            assert ran.returncode == 1 and ran.stderr.strip() == answer, (rows, ran.stderr)
        # A column missing from the file, and JavaScript's own NaN and infinity.
        answer = _page_answer(page, "tenure,region\n10,north\n")
        assert answer == "Error: row 1: column 'amount' is missing"
        from_js = page.evaluate(
            """async () => {
                const answers = [];
                for (const row of [{tenure: 10, amount: Infinity, region: "north"},
                                   {tenure: NaN, amount: 45, region: "north"}]) {
                    try {
                        answers.push(await window.shipyardEdge.scoreRecords([row]));
                    } catch (err) {
                        answers.push(err.message);
                    }
                }
                return answers;
            }"""
        )
        assert from_js == [
            "row 1: column 'amount': inf is infinity, and the model needs a finite number",
            "row 1: column 'tenure': nan is NaN, a missing value, and the model needs a value",
        ]
        # Typed into the form: what was typed is named, not read as an empty value.
        page.fill('#record [name="tenure"]', "inf")
        page.fill('#record [name="amount"]', "45")
        page.click("#score")
        page.wait_for_selector("#result.error")
        typed = (page.text_content("#result") or "").strip()
    assert typed == (
        "Error: row 1: column 'tenure': 'inf' is infinity, and the model needs a finite number"
    )

    # A column that had missing values in training (XGBoost's own missing branch):
    # NaN, an empty value and Python's number forms are scored, as predict.py and
    # load_model score them.
    booster, X = _nullable_booster()
    out = _export(client, booster, X, "booster", tmp_path / "booster-edge")
    scored = "tenure,amount\n10,45\n90,nan\n90,\n1_0, 4.5e1 \n60,NaN\n"
    with _Page(offline_page, out) as page:
        answer = _page_answer(page, scored)
        from_js = page.evaluate("window.shipyardEdge.scoreRecords([{tenure: 90, amount: NaN}])")
    assert not isinstance(answer, str), answer
    ran = _run_bundle(device_python, out, tmp_path / "scored.csv", scored)
    assert ran.returncode == 0, ran.stderr
    python = [json.loads(line) for line in ran.stdout.splitlines()]
    frame = pd.DataFrame(
        {"tenure": [10.0, 90.0, 90.0, 10.0, 60.0], "amount": [45.0, np.nan, np.nan, 45.0, np.nan]}
    )
    expected = np.asarray(client.registry.load("booster:1").predict_proba(frame))
    assert not np.allclose(expected[0], expected[1])  # the missing branch decides something
    for answers, want in ((answer, expected), (python, expected), (from_js, expected[1:2])):
        got = np.array([[a["probabilities"][c] for c in ("0", "1")] for a in answers])
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert offline_page.blocked == [] and offline_page.errors == []


def _nullable_booster() -> tuple[Any, pd.DataFrame]:
    """XGBoost on two numbers, ``amount`` missing in one training row of seven."""
    import xgboost as xgb

    _, X = _churn("ignore")
    X = X[["tenure", "amount"]].copy()
    X.loc[::7, "amount"] = np.nan
    y = ((X["tenure"] > 50) ^ (X["amount"].fillna(0) > 55)).astype(int)
    return xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y), X


@pytest.mark.slow
@pytest.mark.browser
def test_renamed_and_dropped_columns_reach_both_runners(
    client: Shipyard, tmp_path: Path, device_python: Path, offline_page: Any
) -> None:
    """Columns named ``monthly charges ($)`` (an input the converter renamed), an integer
    and a text column imputed in the graph, and a sign-up date the model drops."""
    model, X = everyday("dropped-date")
    _, y = churn()
    out = _export(client, model.fit(X, y), X, "churn", tmp_path / "edge")
    client.registry.set_alias("churn", "production", 1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {i["column"] for i in manifest["graph"]["inputs"]} == set(X.columns) - {"signup"}
    rows = X.head(40)
    served = _served(client, "churn", rows.assign(signup=rows["signup"].astype(str)))  # ISO dates
    classes = [str(c) for c in manifest["signature"]["output"]["classes"]]
    expected = _probabilities(served["probabilities"], classes)
    csv_text = rows.to_csv(index=False)  # blank for a missing number or text
    ran = _run_bundle(device_python, out, tmp_path / "rows.csv", csv_text)
    assert ran.returncode == 0, ran.stderr
    items = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [i["prediction"] for i in items] == served["predictions"]
    np.testing.assert_allclose(
        _probabilities([i["probabilities"] for i in items], classes), expected, atol=1e-5
    )
    with _Page(offline_page, out) as page:
        scored = _page_answer(page, csv_text)
        assert not isinstance(scored, str), scored
        assert [i["prediction"] for i in scored] == served["predictions"]
        np.testing.assert_allclose(
            _probabilities([i["probabilities"] for i in scored], classes), expected, atol=1e-5
        )
        # The form asks only for the columns the model uses.
        assert page.locator('#record [name="signup"]').count() == 0
        assert page.locator('#record [name="monthly charges ($)"]').count() == 1
    assert offline_page.blocked == [] and offline_page.errors == []


#: The new-user trial's file: rows differing only in ``region``; the first nine are
#: missing by Shipyard's one rule (pandas' words), ``-`` and ``north`` are text.
_TRIAL_REGIONS = ["", "NA", "n/a", "N/A", "null", "None", "NaN", "nan", "#N/A", "-", "north"]
_TRIAL_MISSING = {i + 1 for i in range(9)}  # tenure = row number


@pytest.mark.slow
def test_one_csv_file_has_the_same_missing_rows_in_every_path(
    client: Shipyard, tmp_path: Path, device_python: Path
) -> None:
    """Batch CLI, /invocations, validate data and the edge runner refuse the same rows:
    region is required, so a missing one is refused and text (even unknown) is scored."""
    model, X = _churn("ignore")
    out = _export(client, model, X, "churn", tmp_path / "edge")
    client.registry.set_alias("churn", "production", 1)
    head = "tenure,amount,region\n"
    lines = [f"{i + 1},45,{r}\n" for i, r in enumerate(_TRIAL_REGIONS)]
    path = tmp_path / "trial.csv"
    path.write_text(head + "".join(lines))
    manifest = json.loads((out / "manifest.json").read_text())
    assert "None" in manifest["csv_missing"] and "-" not in manifest["csv_missing"]

    # shipyard predict: the rejects file names the refused rows.
    rejects = tmp_path / "rejects.csv"
    done = _cli(
        client, "predict", "churn:1", "--input", str(path),
        "--output", str(tmp_path / "scores.parquet"), "--rejects", str(rejects),
    )  # fmt: skip
    assert done.exit_code in (0, 1), done.output
    batch = set(pd.read_csv(rejects)["tenure"].astype(int)) if rejects.exists() else set()

    # /invocations, one row per request.
    app = create_app(client, "churn", options=ServeOptions(prediction_log=False))
    server = LiveServer(app).start()
    try:
        with server.client() as http:
            served = {
                i + 1
                for i, line in enumerate(lines)
                if http.post(
                    "/invocations", content=head + line, headers={"content-type": "text/csv"}
                ).status_code
                != 200
            }
    finally:
        server.stop()

    # The edge bundle's Python runner, one row per run (it stops at the first refusal).
    edge = set()
    for i, line in enumerate(lines):
        ran = _run_bundle(device_python, out, tmp_path / f"row{i}.csv", head + line)
        if ran.returncode != 0:
            assert f"column 'region': {_TRIAL_REGIONS[i]!r} is a missing value" in ran.stderr or (
                "column 'region' is empty" in ran.stderr and _TRIAL_REGIONS[i] == ""
            ), ran.stderr
            edge.add(i + 1)

    # shipyard validate data: one file per row, an error for a missing region.
    validated = set()
    for i, line in enumerate(lines):
        one = tmp_path / f"validate{i}.csv"
        one.write_text(head + line)
        checked = _cli(client, "validate", "data", "churn:1", str(one))
        if checked.exit_code != 0 and "missing" in checked.output.lower():
            validated.add(i + 1)

    assert batch == _TRIAL_MISSING
    assert served == _TRIAL_MISSING
    assert edge == _TRIAL_MISSING
    assert validated == _TRIAL_MISSING


@pytest.mark.slow
@pytest.mark.browser
def test_the_browser_runner_reads_the_same_missing_words(
    client: Shipyard, tmp_path: Path, offline_page: Any
) -> None:
    model, X = _churn("ignore")
    out = _export(client, model, X, "churn", tmp_path / "edge")
    head = "tenure,amount,region\n"
    refused = set()
    with _Page(offline_page, out) as page:
        for i, region in enumerate(_TRIAL_REGIONS):
            answer = _page_answer(page, f"{head}{i + 1},45,{region}\n")
            if isinstance(answer, str):
                assert (
                    "column 'region' is empty" if region == "" else f"'{region}' is a missing value"
                ) in answer, answer
                refused.add(i + 1)
        # Quoted, a word is missing too (pandas' rule); "na" is text.
        quoted = _page_answer(page, f'{head}1,45,"NA"\n')
        lower = _page_answer(page, f"{head}1,45,na\n")
    assert refused == _TRIAL_MISSING
    assert isinstance(quoted, str) and "'NA' is a missing value" in quoted
    assert not isinstance(lower, str), lower
    assert offline_page.blocked == [] and offline_page.errors == []
