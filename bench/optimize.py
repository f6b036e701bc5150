"""Benchmark optimized versions: size, single-row latency and accuracy, before and after.

Models (scikit-learn datasets, 30 % stratified holdout, seed 0):

- ``mlp-digits``: MLPClassifier(hidden 128) on digits;
- ``forest-cancer``: RandomForest(300 trees) on breast cancer;
- ``boosting-cancer``: GradientBoosting(300 stages) on breast cancer;
- ``wine-pipeline``: wine with a text column, ColumnTransformer (scaler + one-hot)
  then LogisticRegression.

Forms of each model, each a registered version made by the real commands' service
functions: ``original`` (the framework model, served with ``--no-onnx``), ``onnx``
(its verified graph, what ``shipyard serve`` answers with by default), ``int8``
(``optimize --quantize int8``), ``pruned`` (``optimize --prune --max-drop
accuracy:0.01``), ``distilled`` (``optimize --distill
sklearn.tree:DecisionTreeClassifier?max_depth=8``). A form that the command refuses
(int8 of a tree ensemble: no matrix product to quantize) is reported as such.

Figures per form: bytes on disk of what serves (the package for ``original``, the
ONNX graph otherwise); single-row p50 in process (``LoadedModel.predict`` of one
record, 1000 calls after warm-up); single-row p50 through ``shipyard serve`` (one
worker, prediction log off) with wrk at 1 and 64 connections; holdout accuracy;
the ratios against the original ONNX form. The browser runner (``shipyard export
--target edge``) is timed in headless Chromium for the ONNX form: mean milliseconds
per single-row run after load (Chromium coarsens ``performance.now``, so a mean
over 2000 runs, not a median).

    .venv/bin/python bench/optimize.py                 # full size
    .venv/bin/python bench/optimize.py --quick         # small: 1 s of wrk, fewer calls
    .venv/bin/python bench/optimize.py --browser-only  # only the browser runner, 3 loads
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from optimized_models import cancer, wine_pipeline  # noqa: E402
from shipyard import Shipyard  # noqa: E402
from shipyard.config import Settings  # noqa: E402
from shipyard.optimization.service import (  # noqa: E402
    Distill,
    Prune,
    Quantize,
    optimize_model,
)
from shipyard.registry.graphs import version_graph  # noqa: E402
from shipyard.registry.optimize import compiled_model  # noqa: E402
from shipyard.validation.fidelity import FidelitySpec  # noqa: E402
from shipyard.validation.gates import compute_metrics  # noqa: E402
from shipyard.validation.service import package_size  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
STUDENT = "sklearn.tree:DecisionTreeClassifier?max_depth=8&random_state=0"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests": %%d, "non2xx": %%d, "p50_us": %%d}\\n',
    summary.requests, summary.errors.status, latency:percentile(50)))
end
"""


def digits_mlp() -> tuple[Any, pd.DataFrame, pd.DataFrame, pd.Series]:
    data = load_digits(as_frame=True)
    Xtr, Xte, ytr, yte = train_test_split(
        data.data, data.target, test_size=0.3, random_state=0, stratify=data.target
    )
    model = MLPClassifier(hidden_layer_sizes=(128,), max_iter=400, random_state=0)
    return model.fit(Xtr, ytr), Xtr, Xte, yte


def forest() -> tuple[Any, pd.DataFrame, pd.DataFrame, pd.Series]:
    Xtr, Xte, ytr, yte = cancer()
    return RandomForestClassifier(300, random_state=0, n_jobs=1).fit(Xtr, ytr), Xtr, Xte, yte


def boosting() -> tuple[Any, pd.DataFrame, pd.DataFrame, pd.Series]:
    Xtr, Xte, ytr, yte = cancer()
    return GradientBoostingClassifier(n_estimators=300, random_state=0).fit(Xtr, ytr), Xtr, Xte, yte


MODELS = {
    "mlp-digits": digits_mlp,
    "forest-cancer": forest,
    "boosting-cancer": boosting,
    "wine-pipeline": wine_pipeline,
}


@dataclass
class Row:
    model: str
    form: str
    ref: str | None
    note: str = ""
    bytes: int | None = None
    p50_process_ms: float | None = None
    p50_serve1_ms: float | None = None
    p50_serve64_ms: float | None = None
    accuracy: float | None = None
    browser_ms: float | None = None


# -- measuring ----------------------------------------------------------------------------


def p50_in_process(model: Any, X: pd.DataFrame, calls: int) -> float:
    records = X.to_dict(orient="records")
    for record in records[:20]:
        model.predict(record)
    times = []
    for i in range(calls):
        record = records[i % len(records)]
        start = time.perf_counter()
        model.predict(record)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_p50(
    home: Path, ref: str, record: dict[str, Any], *, onnx: bool, seconds: float
) -> tuple[float, float]:
    """p50 ms at 1 and 64 connections through `shipyard serve REF` (one worker)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    argv = [
        str(REPO / ".venv" / "bin" / "shipyard"), "serve", ref, "--port", str(port),
        "--no-prediction-log", "--log-level", "warning", "--onnx" if onnx else "--no-onnx",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"shipyard serve {ref} did not become ready")
            time.sleep(0.2)
        body = json.dumps(record)
        check = httpx.post(
            url + "/predict",
            content=body,
            headers={"content-type": "application/json"},
            timeout=10,
        )
        check.raise_for_status()
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(WRK_SCRIPT % body)
        out = []
        for connections in (1, 64):
            done = subprocess.run(
                ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", f.name,
                 url + "/predict"],
                capture_output=True, text=True, check=True, timeout=seconds + 60,
            )  # fmt: skip
            line = next(ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON "))
            data = json.loads(line.removeprefix("WRKJSON "))
            if data["non2xx"]:
                raise RuntimeError(f"{data['non2xx']} failed requests to {ref}")
            out.append(data["p50_us"] / 1000)
        os.unlink(f.name)
        return out[0], out[1]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def browser_ms(client: Shipyard, ref: str, X: pd.DataFrame, runs: int) -> float | None:
    """Mean ms per single-row run of the exported bundle's page, after load."""
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    from shipyard.deploy.edge import export_edge

    folder = Path(tempfile.mkdtemp()) / "bundle"
    export_edge(client.registry, ref, folder)
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(folder),
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows = json.loads(X.head(200).to_json(orient="records"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.wait_for_function("document.body.dataset.ready === 'true'", timeout=120_000)
            ms = page.evaluate(
                """async ([rows, runs]) => {
                    const score = window.shipyardEdge.scoreRecords;
                    for (const row of rows.slice(0, 20)) await score([row]);
                    const start = performance.now();
                    for (let i = 0; i < runs; i++) await score([rows[i % rows.length]]);
                    return (performance.now() - start) / runs;
                }""",
                [rows, runs],
            )
            browser.close()
            return float(ms)
    finally:
        server.shutdown()


# -- the run ------------------------------------------------------------------------------


def bench_model(client: Shipyard, home: Path, name: str, quick: bool) -> list[Row]:
    model, Xtr, Xte, yte = MODELS[name]()
    holdout = Xte.assign(label=np.asarray(yte))
    source = client.registry.log_model(model, name, sample=Xtr)
    spec = FidelitySpec({"accuracy": 0.01}, 0.95)
    forms: list[tuple[str, str | None, str]] = [
        ("original", source.ref, ""),
        ("onnx", source.ref, ""),
    ]
    for form, method in (
        ("int8", Quantize("int8")),
        ("pruned", Prune()),
        ("distilled", Distill(STUDENT)),
    ):
        try:
            result = optimize_model(
                client.registry, client.validation, source.ref, method,
                holdout=holdout, target="label", spec=spec,
            )  # fmt: skip
        except Exception as exc:  # a refused form is a finding, reported in the table
            forms.append((form, None, "refused: " + str(exc).split(" (")[0][:90]))
            continue
        gates = "gates passed" if result.passed else "gates FAILED"
        forms.append((form, result.version.ref, f"{result.detail[:60]}; {gates}"))
    calls = 200 if quick else 1000
    seconds = 1.0 if quick else 5.0
    record = json.loads(Xte.head(1).to_json(orient="records"))[0]
    rows = []
    for form, ref, note in forms:
        row = Row(name, form, ref, note)
        rows.append(row)
        if ref is None:
            continue
        version = client.registry.resolve(ref)
        loaded = client.registry.load(ref)
        onnx = form != "original"
        served = compiled_model(client.registry, version, loaded) if onnx else loaded
        if onnx:
            row.bytes = len(version_graph(client.registry, version, compile_if_missing=False))
        else:
            row.bytes = package_size(client.registry, version)
        row.p50_process_ms = p50_in_process(served, Xte, calls)
        row.accuracy = compute_metrics(served, Xte, yte, ["accuracy"])["accuracy"]
        row.p50_serve1_ms, row.p50_serve64_ms = serve_p50(
            home, ref, record, onnx=onnx, seconds=seconds
        )
        if form == "onnx":
            row.browser_ms = browser_ms(client, ref, Xte, 500 if quick else 2000)
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| model | form | size | ONNX size / size | p50 in process (ms) | ONNX / form speed "
        "| p50 serve, 1 client (ms) | p50 serve, 64 clients (ms) | holdout accuracy | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_model: dict[str, Row] = {r.model: r for r in rows if r.form == "onnx"}
    for r in rows:
        base = by_model.get(r.model)
        smaller = f"{base.bytes / r.bytes:.1f}x" if base and base.bytes and r.bytes else "-"
        faster = (
            f"{base.p50_process_ms / r.p50_process_ms:.1f}x"
            if base and base.p50_process_ms and r.p50_process_ms
            else "-"
        )
        size = "-" if r.bytes is None else f"{r.bytes / 1000:.1f} kB"
        note = r.note or ""
        if r.browser_ms is not None:
            note = f"browser runner {r.browser_ms:.3f} ms/row after load"
        lines.append(
            f"| {r.model} | {r.form} | {size} | {smaller} | {_fmt(r.p50_process_ms)} | {faster} "
            f"| {_fmt(r.p50_serve1_ms, 2)} | {_fmt(r.p50_serve64_ms, 2)} "
            f"| {_fmt(r.accuracy, 4)} | {note} |"
        )
    return "\n".join(lines)


def goals(rows: list[Row]) -> list[str]:
    out = []
    for model in MODELS:
        base = next((r for r in rows if r.model == model and r.form == "onnx"), None)
        if base is None or not base.bytes or not base.p50_process_ms or base.accuracy is None:
            continue
        met = []
        for r in rows:
            if r.model != model or r.form in ("original", "onnx") or r.bytes is None:
                continue
            assert r.p50_process_ms is not None and r.accuracy is not None
            small = base.bytes / r.bytes
            fast = base.p50_process_ms / r.p50_process_ms
            within = base.accuracy - r.accuracy <= 0.01 + 1e-12
            if (small >= 3 or fast >= 3) and within:
                met.append(f"{r.form} ({small:.1f}x smaller, {fast:.1f}x faster)")
        verdict = "met by " + ", ".join(met) if met else "NOT met"
        out.append(f"- {model}: 3x smaller or faster than ONNX within 1 point: {verdict}")
    browser = [r.browser_ms for r in rows if r.browser_ms is not None]
    if browser:
        worst = max(browser)
        out.append(
            f"- browser runner under 1 ms per row after load: worst {worst:.3f} ms "
            f"({'met' if worst < 1 else 'NOT met'})"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--browser-only",
        action="store_true",
        help="only the browser runner's ms per row (3 page loads per model, 2000 runs each)",
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="shipyard-bench-optimize-"))
    client = Shipyard(Settings(home=home))
    if args.browser_only:
        for name in args.models:
            model, Xtr, Xte, _ = MODELS[name]()
            ref = client.registry.log_model(model, name, sample=Xtr).ref
            runs = [browser_ms(client, ref, Xte, 2000) for _ in range(3)]
            print(f"{name}: browser runner ms per row after load: {runs}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        return
    rows: list[Row] = []
    for name in args.models:
        print(f"... {name}", file=sys.stderr, flush=True)
        rows.extend(bench_model(client, home, name, args.quick))
    client.close()
    print(table(rows))
    print()
    print("\n".join(goals(rows)))
    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", load average {os.getloadavg()[0]:.2f} at the end"
    )


if __name__ == "__main__":
    main()
