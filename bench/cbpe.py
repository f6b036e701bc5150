"""Performance estimation under covariate shift: Shipyard's calibrated CBPE vs NannyML's.

For each real dataset shipped with scikit-learn (breast cancer: binary; wine
and digits: multi-class) and each model (logistic regression, random forest,
gradient boosting), the rows not used for training are split by a shifted
draw: the *analysis* set comes mostly from a region of feature space (high
values of the first principal component) that the *reference* under-represents.
Both tools calibrate on the labelled reference and estimate accuracy per chunk
of the analysis set; the script prints, per case, the largest difference
between the two estimates, the mean absolute error of each against the
realized accuracy, and the time each took (NannyML's in its own venv,
``bench/.peers/nannyml``, imports excluded).

    .venv/bin/python bench/cbpe.py               # every case, one NannyML process
    .venv/bin/python bench/cbpe.py --child SPEC  # (internal) NannyML's side

The child runs inside NannyML's venv and imports nothing from Shipyard.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NANNYML_REQUIREMENTS = ["nannyml==0.13.1", "statsmodels", "pandas<3", "numpy<2.3"]
DATASETS = ("breast_cancer", "wine", "digits")
MODELS = ("logistic_regression", "random_forest", "gradient_boosting")


# -- the cases (Shipyard's venv) --------------------------------------------------------


def shifted_split(X: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Train / reference / analysis indices; the analysis set leans to high PC1."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_train = int(0.4 * len(X))
    train, rest = order[:n_train], order[n_train:]
    z = PCA(1, random_state=seed).fit_transform(StandardScaler().fit_transform(X))[:, 0]
    z = (z - z.mean()) / z.std()
    to_analysis = rng.uniform(size=len(rest)) < 1 / (1 + np.exp(-2.0 * z[rest]))
    return {"train": train, "reference": rest[~to_analysis], "analysis": rest[to_analysis]}


def model_for(name: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if name == "random_forest":
        return RandomForestClassifier(100, min_samples_leaf=3, random_state=seed, n_jobs=1)
    return HistGradientBoostingClassifier(max_iter=60, random_state=seed)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


def make_case(dataset: str, model_name: str, chunk_size: int, seed: int = 0) -> dict[str, Any]:
    """Probabilities, predictions and labels of the reference and analysis sets."""
    X, y = load(dataset)
    parts = shifted_split(X, y, seed)
    model = model_for(model_name, seed).fit(X[parts["train"]], y[parts["train"]])
    analysis = parts["analysis"]
    analysis = analysis[: len(analysis) // chunk_size * chunk_size]  # whole chunks only
    out: dict[str, Any] = {
        "name": f"{dataset}/{model_name}",
        "classes": [int(c) for c in model.classes_],
        "chunk_size": chunk_size,
    }
    for period, rows in (("reference", parts["reference"]), ("analysis", analysis)):
        proba = model.predict_proba(X[rows])
        out[period] = {
            "proba": proba,
            "pred": model.classes_[proba.argmax(axis=1)],
            "true": y[rows],
        }
    return out


def shipyard_estimates(case: dict[str, Any]) -> tuple[list[float], float]:
    """Shipyard's calibrated CBPE accuracy per chunk, and the seconds it took."""
    from shipyard.monitoring.calibration import fit_calibration
    from shipyard.monitoring.estimate import estimate_classifier

    classes = case["classes"]
    keys = tuple(str(c) for c in classes)
    index = {c: j for j, c in enumerate(classes)}
    ref, ana = case["reference"], case["analysis"]
    started = time.perf_counter()
    calibration = fit_calibration(
        ref["proba"], np.array([index[c] for c in ref["true"]]), classes=keys
    )
    chunks = estimate_classifier(
        ana["proba"],
        np.array([index[c] for c in ana["pred"]]),
        chunk_size=case["chunk_size"],
        calibration=calibration,
        draws=0,  # NannyML's run computes no band for F1 or AUC: time the same work
    )
    seconds = time.perf_counter() - started
    return [float(c.metrics["accuracy"]) for c in chunks], seconds  # type: ignore[arg-type]


def realized(case: dict[str, Any]) -> list[float]:
    ana, size = case["analysis"], case["chunk_size"]
    right = ana["pred"] == ana["true"]
    return [float(right[i : i + size].mean()) for i in range(0, len(right), size)]


def frames(case: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The reference and analysis sets as NannyML reads them."""
    out = {}
    for period in ("reference", "analysis"):
        part = case[period]
        frame = pd.DataFrame({"y_true": part["true"], "y_pred": part["pred"]})
        for j, c in enumerate(case["classes"]):
            frame[f"proba_{c}"] = part["proba"][:, j]
        out[period] = frame
    return out


def nannyml_estimates(cases: list[dict[str, Any]], python: Path) -> dict[str, dict[str, Any]]:
    """NannyML's per-chunk accuracy of every case, from one child process."""
    with tempfile.TemporaryDirectory(prefix="cbpe-bench-") as tmp:
        root = Path(tmp)
        spec = []
        for i, case in enumerate(cases):
            paths = {}
            for period, frame in frames(case).items():
                paths[period] = str(root / f"{i}_{period}.parquet")
                frame.to_parquet(paths[period])
            spec.append(
                {
                    "name": case["name"],
                    "classes": case["classes"],
                    "chunk_size": case["chunk_size"],
                    **paths,
                }
            )
        (root / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        subprocess.run(
            [str(python), __file__, "--child", str(root / "spec.json")], check=True, env=env
        )
        results: dict[str, dict[str, Any]] = json.loads((root / "out.json").read_text())
        return results


# -- NannyML's side (its own venv) ------------------------------------------------------


def child(spec_path: str) -> None:
    import warnings

    import nannyml as nml

    warnings.filterwarnings("ignore", message="The resulting number of chunks is too low")

    results = {}
    for case in json.loads(Path(spec_path).read_text()):
        reference = pd.read_parquet(case["reference"])
        analysis = pd.read_parquet(case["analysis"])
        classes = case["classes"]
        started = time.perf_counter()
        if len(classes) == 2:
            options = {"problem_type": "classification_binary", "y_pred_proba": "proba_1"}
        else:
            proba = {c: f"proba_{c}" for c in classes}
            options = {"problem_type": "classification_multiclass", "y_pred_proba": proba}
        estimator = nml.CBPE(
            y_true="y_true",
            y_pred="y_pred",
            metrics=["accuracy"],
            chunk_size=case["chunk_size"],
            **options,
        )
        estimator.fit(reference)
        frame = estimator.estimate(analysis).filter(period="analysis").to_df()
        seconds = time.perf_counter() - started
        values = frame[("accuracy", "value")].astype(float).tolist()
        results[case["name"]] = {"accuracy": values, "seconds": seconds}
    (Path(spec_path).parent / "out.json").write_text(json.dumps(results))


# -- main -------------------------------------------------------------------------------


def compare(cases: list[dict[str, Any]], python: Path) -> list[dict[str, Any]]:
    """Per case: both tools' estimates, realized accuracy, max gap, MAE, seconds."""
    theirs = nannyml_estimates(cases, python)
    rows = []
    for case in cases:
        ours, seconds = shipyard_estimates(case)
        truth = realized(case)
        peer = theirs[case["name"]]["accuracy"]
        rows.append(
            {
                "case": case["name"],
                "chunks": len(ours),
                "shipyard": ours,
                "nannyml": peer,
                "realized": truth,
                "max_gap": float(np.max(np.abs(np.subtract(ours, peer)))),
                "mae_shipyard": float(np.mean(np.abs(np.subtract(ours, truth)))),
                "mae_nannyml": float(np.mean(np.abs(np.subtract(peer, truth)))),
                "seconds_shipyard": seconds,
                "seconds_nannyml": theirs[case["name"]]["seconds"],
            }
        )
    return rows


CHUNK_SIZES = {"breast_cancer": 40, "wine": 15, "digits": 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _peers import ensure_peer_venv, peer_python

    python = peer_python(ensure_peer_venv("nannyml", NANNYML_REQUIREMENTS))
    cases = [make_case(d, m, CHUNK_SIZES[d]) for d in DATASETS for m in MODELS]
    print(f"{'case':38} {'chunks':>6} {'max |gap|':>9} {'MAE sy':>7} {'MAE nml':>7} "
          f"{'sy ms':>7} {'nml ms':>7} {'ratio':>6}")  # fmt: skip
    for r in compare(cases, python):
        ratio = r["seconds_nannyml"] / r["seconds_shipyard"]
        print(
            f"{r['case']:38} {r['chunks']:>6} {r['max_gap']:>9.2e} {r['mae_shipyard']:>7.4f} "
            f"{r['mae_nannyml']:>7.4f} {r['seconds_shipyard'] * 1e3:>7.1f} "
            f"{r['seconds_nannyml'] * 1e3:>7.1f} {ratio:>5.1f}x"
        )


if __name__ == "__main__":
    main()
