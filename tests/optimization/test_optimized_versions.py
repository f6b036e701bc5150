"""``shipyard optimize REF --quantize/--prune/--distill``: new versions, lineage, gates."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from typer.testing import CliRunner

from everyday_models import churn, everyday
from optimized_models import MAKERS, digits_mlp, forest
from shipyard import Shipyard
from shipyard.config import Settings
from shipyard.errors import InvalidInputError
from shipyard.optimization.service import Prune, Quantize, optimize_model, source_graph
from shipyard.registry.flavors.onnx import INPUTS_METADATA
from shipyard.validation.approvals import PromotionBlockedError


@pytest.fixture
def client(settings: Settings) -> Shipyard:
    c = Shipyard(settings)
    yield c
    c.close()


def _cli(client: Shipyard, *args: str) -> Any:
    from shipyard.cli.main import app

    return CliRunner().invoke(app, list(args), obj=client)


def _register(client: Shipyard, tmp_path: Path, kind: str, name: str) -> Path:
    """Register the model as NAME:1 and write its labelled holdout to a CSV."""
    model, Xtr, Xte, yte = MAKERS[kind]()
    client.registry.log_model(model, name, sample=Xtr)
    holdout = tmp_path / f"{name}-holdout.csv"
    Xte.assign(label=np.asarray(yte)).to_csv(holdout, index=False)
    return holdout


def test_int8_quantization_makes_a_new_gated_version_with_lineage(
    client: Shipyard, tmp_path: Path
) -> None:
    holdout = _register(client, tmp_path, "mlp", "digits")
    root_level = logging.getLogger().level
    done = _cli(
        client, "optimize", "digits:1", "--quantize", "int8",
        "--holdout", str(holdout), "--target", "label", "--max-drop", "accuracy:0.01",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    # The quantizer's chatter is quieted for its call only, not for the whole process.
    assert logging.getLogger().level == root_level
    assert "digits:2: registered, optimized from digits:1 by int8 quantization" in done.stdout
    version = client.registry.resolve("digits:2")
    assert version.flavor == "onnx"
    assert version.tags["optimized_from"] == "digits:1"
    assert version.tags["optimization_detail"].startswith("int8: MatMul x2; kept float:")
    # The registered graph really holds int8 matrix products, and is smaller.
    graph = onnx.load_model_from_string(source_graph(client.registry, version))
    assert "MatMulInteger" in {n.op_type for n in graph.graph.node}
    assert (
        len(graph.SerializeToString())
        < len(source_graph(client.registry, client.registry.resolve("digits:1"))) / 2
    )
    # Gated against its source, stored with it like any gate run.
    gate = client.validation.promotion_facts("digits", 2).latest_gate
    assert gate is not None and gate.passed and gate.against == "digits:1"
    kinds = {c["kind"] for c in gate.report["checks"]}
    assert kinds == {"max_drop", "agreement"}
    assert (
        gate.report["optimization"]["after"]["graph_bytes"]
        < gate.report["optimization"]["before"]["graph_bytes"]
    )
    shown = _cli(client, "models", "show", "digits:2")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "optimized from digits:1 by int8 quantization" in text
    assert "metric cost: accuracy 0." in text and "agreement" in text
    assert "gates against the source: passed" in text
    assert "Runtime: onnxruntime (this version is an ONNX graph)." in text
    # It answers like its source on the holdout through the registry (what a server loads).
    X = pd.read_csv(holdout).drop(columns=["label"])
    same = client.registry.load("digits:2").predict(X) == client.registry.load("digits:1").predict(
        X
    )
    assert same.mean() >= 0.95


def test_int8_quantization_of_a_linear_pipeline_with_a_text_column(
    client: Shipyard, tmp_path: Path
) -> None:
    """LinearClassifier has no int8 kernel: it is rewritten as MatMul + Add + Softmax first."""
    holdout = _register(client, tmp_path, "pipeline", "wine")
    done = _cli(
        client, "optimize", "wine:1", "--quantize", "int8",
        "--holdout", str(holdout), "--target", "label", "--max-drop", "accuracy:0.02",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    version = client.registry.resolve("wine:2")
    assert version.tags["optimization_detail"].startswith("int8: MatMul; kept float:")
    graph = onnx.load_model_from_string(source_graph(client.registry, version))
    ops = {n.op_type for n in graph.graph.node}
    assert "MatMulInteger" in ops and "LinearClassifier" not in ops
    X = pd.read_csv(holdout).drop(columns=["label"])
    labels = client.registry.load("wine:2").predict(X)
    assert set(labels) <= {"barolo", "grignolino", "barbera"}
    assert (labels == client.registry.load("wine:1").predict(X)).mean() >= 0.95


def test_fp16_quantization_says_which_operators_stay_float(
    client: Shipyard, tmp_path: Path
) -> None:
    _register(client, tmp_path, "mlp", "digits")
    done = _cli(client, "optimize", "digits:1", "--quantize", "fp16", "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["version"] == "digits:2" and out["passed"]
    assert out["detail"].startswith("float16: Add x2, MatMul x2")
    assert "kept float: ArgMax, ArrayFeatureExtractor" in out["detail"]
    # No holdout: agreement with the source on its training sample is the gate.
    assert [c["kind"] for c in out["gates"]["checks"]] == ["agreement"]
    graph = onnx.load_model_from_string(
        source_graph(client.registry, client.registry.resolve("digits:2"))
    )
    types = {t.data_type for t in graph.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types


def test_quantizing_a_forest_is_refused_with_the_reason(client: Shipyard, tmp_path: Path) -> None:
    _register(client, tmp_path, "forest", "cancer")
    done = _cli(client, "optimize", "cancer:1", "--quantize", "int8")
    assert done.exit_code == 1
    message = " ".join(done.stderr.split())
    assert "nothing in this graph can be int8-quantized" in message
    assert "TreeEnsemble" in message and "--prune" in message
    assert "Traceback" not in done.output
    assert [v.version for v in client.models.list_versions("cancer")] == [1]


@pytest.mark.parametrize("kind", ["forest", "boosting", "xgboost", "lightgbm"])
def test_pruning_keeps_the_fewest_trees_that_pass(
    client: Shipyard, tmp_path: Path, kind: str
) -> None:
    holdout = _register(client, tmp_path, kind, "cancer")
    done = _cli(
        client, "optimize", "cancer:1", "--prune",
        "--holdout", str(holdout), "--target", "label", "--max-drop", "accuracy:0.02",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    version = client.registry.resolve("cancer:2")
    kept, _, total = version.tags["optimization_detail"].split()[:3]
    assert int(kept) < int(total)
    assert version.flavor == client.registry.resolve("cancer:1").flavor
    # The pruned model is a model of its own: compiled and verified at registration too.
    assert version.tags["onnx_status"] == "verified"
    X = pd.read_csv(holdout).drop(columns=["label"])
    labels = client.registry.load("cancer:2").predict(X)
    assert set(np.unique(labels)) <= {0, 1}
    gate = client.validation.promotion_facts("cancer", 2).latest_gate
    assert gate is not None and gate.passed
    before = gate.report["optimization"]["before"]["graph_bytes"]
    assert gate.report["optimization"]["after"]["graph_bytes"] < before


def test_pruning_an_mlp_removes_hidden_neurons(client: Shipyard) -> None:
    model, Xtr, Xte, yte = digits_mlp()
    client.registry.log_model(model, "digits", sample=Xtr)
    result = optimize_model(
        client.registry, client.validation, "digits:1", Prune(),
        holdout=Xte.assign(label=yte), target="label",
    )  # fmt: skip
    assert result.passed
    pruned = client.registry.load("digits:2").predictor.model
    assert pruned.coefs_[0].shape[1] < 64 and pruned.coefs_[1].shape[0] == pruned.coefs_[0].shape[1]
    assert result.detail.startswith("hidden neurons (64,) -> (")


def test_distillation_of_a_text_pipeline_and_the_production_guard(
    client: Shipyard, tmp_path: Path
) -> None:
    holdout = _register(client, tmp_path, "pipeline", "wine")
    student = "sklearn.tree:DecisionTreeClassifier?max_depth=4&random_state=0"
    done = _cli(
        client, "optimize", "wine:1", "--distill", student,
        "--holdout", str(holdout), "--target", "label", "--max-drop", "accuracy:0.2",
        "--min-agreement", "0.8",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    distilled = client.registry.load("wine:2").predictor.model
    assert type(distilled.steps[-1][1]).__name__ == "DecisionTreeClassifier"
    assert distilled.steps[-1][1].get_depth() <= 4
    assert (
        "distillation into sklearn.tree:DecisionTreeClassifier"
        in client.registry.resolve("wine:2").tags["optimization"]
    )
    # The same student under gates it cannot meet: kept, exit 1, refused production.
    strict = _cli(
        client, "optimize", "wine:1",
        "--distill", "sklearn.tree:DecisionTreeClassifier?max_depth=1",
        "--holdout", str(holdout), "--target", "label", "--max-drop", "accuracy:0",
        "--min-agreement", "1.0",
    )  # fmt: skip
    assert strict.exit_code == 1
    assert "wine:3 failed its gates against wine:1" in " ".join(strict.stderr.split())
    assert client.registry.resolve("wine:3").tags["optimization_gates"].startswith("failed")
    with pytest.raises(PromotionBlockedError):
        client.registry.set_alias("wine", "production", 3)
    refused = _cli(client, "models", "alias", "wine", "production", "3")
    assert refused.exit_code == 1 and "gate" in refused.stderr.lower()
    client.registry.set_alias("wine", "production", 2)  # the passing one may go


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--distill", "sklearn.tree"], "is not MODULE:CLASS"),
        (["--distill", "sklearn.tree:NoSuchTree"], "has no estimator class 'NoSuchTree'"),
        (["--distill", "no_such_module:Tree"], "cannot import module 'no_such_module'"),
        (["--distill", "sklearn.tree:DecisionTreeClassifier?depth=3"], "unexpected keyword"),
        (["--quantize", "int4"], "--quantize takes int8 or fp16"),
        (["--prune", "--max-drop", "accuracy"], "is not METRIC:AMOUNT"),
        (["--prune", "--max-drop", "speed:0.1"], "unknown metric 'speed'"),
        (["--prune", "--holdout", "h.csv"], "--holdout FILE and --target COLUMN go together"),
        (["--prune", "--quantize", "int8"], "choose one of --quantize, --prune, --distill"),
        (["--holdout", "h.csv", "--target", "y"], "add --quantize, --prune or --distill"),
    ],
)
def test_bad_optimization_input_is_one_clear_line(
    client: Shipyard, tmp_path: Path, args: list[str], expected: str
) -> None:
    model, Xtr, _, _ = forest(10)
    client.registry.log_model(model, "cancer", sample=Xtr)
    done = _cli(client, "optimize", "cancer:1", *args)
    assert done.exit_code != 0
    assert expected in " ".join(done.output.split())
    assert "Traceback" not in done.output
    assert [v.version for v in client.models.list_versions("cancer")] == [1]


def test_a_version_without_its_training_sample_cannot_be_optimized(client: Shipyard) -> None:
    from shipyard.registry.signature import infer_signature

    model, Xtr, _, _ = forest(10)
    # Registered with a signature and no sample: no training rows are kept with it.
    client.registry.log_model(model, "bare", sample=None, signature=infer_signature(Xtr))
    done = _cli(client, "optimize", "bare:1", "--prune")
    assert done.exit_code == 1
    assert "has no stored training sample" in " ".join(done.stderr.split())


def test_max_drop_adds_a_check_to_the_default_accuracy_gate(
    client: Shipyard, tmp_path: Path
) -> None:
    holdout = _register(client, tmp_path, "forest", "cancer")
    # A loose ROC AUC allowance alone would let pruning cut far more trees; the
    # default accuracy:0.01 still holds, so both checks gate the pruned version.
    done = _cli(
        client, "optimize", "cancer:1", "--prune",
        "--holdout", str(holdout), "--target", "label", "--max-drop", "roc_auc:0.5",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    gate = client.validation.promotion_facts("cancer", 2).latest_gate
    assert gate is not None and gate.passed
    drops = {c["metric"]: c for c in gate.report["checks"] if c["kind"] == "max_drop"}
    assert set(drops) == {"accuracy", "roc_auc"}
    assert drops["accuracy"]["limit"] == 0.01 and drops["accuracy"]["observed"] <= 0.01
    assert drops["roc_auc"]["limit"] == 0.5
    assert "[ok  ] accuracy " in done.stdout and "[ok  ] roc_auc " in done.stdout
    # A --max-drop for the default's own metric replaces its amount (no second check).
    done = _cli(
        client, "optimize", "cancer:1", "--prune",
        "--holdout", str(holdout), "--target", "label", "--max-drop", "accuracy:0.05",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    gate = client.validation.promotion_facts("cancer", 3).latest_gate
    assert gate is not None
    drops = {c["metric"]: c for c in gate.report["checks"] if c["kind"] == "max_drop"}
    assert list(drops) == ["accuracy"] and drops["accuracy"]["limit"] == 0.05


def test_distilling_a_regressor_says_predictions_and_metric_cost(
    client: Shipyard, tmp_path: Path
) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    Xtr, Xte, ytr, yte = X.iloc[:300], X.iloc[300:], y.iloc[:300], y.iloc[300:]
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(Xtr, ytr)
    client.registry.log_model(model, "diabetes", sample=Xtr)
    holdout = tmp_path / "holdout.csv"
    Xte.assign(label=yte.to_numpy()).to_csv(holdout, index=False)
    done = _cli(
        client, "optimize", "diabetes:1",
        "--distill", "sklearn.tree:DecisionTreeRegressor?max_depth=4&random_state=0",
        "--holdout", str(holdout), "--target", "label", "--max-drop", "r2:1",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    text = " ".join(done.stdout.split())
    assert "trained on the teacher's predictions over 300 training rows" in text
    assert "metric cost: mae " in text and "r2 0." in text and "accuracy" not in text, text


def test_pruning_a_graph_without_its_estimator_is_refused_in_good_english(
    client: Shipyard, tmp_path: Path
) -> None:
    holdout = _register(client, tmp_path, "mlp", "digits")
    quantized = _cli(
        client, "optimize", "digits:1", "--quantize", "int8",
        "--holdout", str(holdout), "--target", "label",
    )  # fmt: skip
    assert quantized.exit_code == 0, quantized.output
    done = _cli(client, "optimize", "digits:2", "--prune")
    assert done.exit_code == 1
    assert "an onnx model without its estimator cannot be pruned" in " ".join(done.stderr.split())


def test_optimizing_without_a_holdout_warns_that_only_agreement_was_checked(
    client: Shipyard, tmp_path: Path
) -> None:
    holdout = _register(client, tmp_path, "forest", "cancer")
    done = _cli(client, "optimize", "cancer:1", "--prune")
    assert done.exit_code == 0, done.output
    warning = " ".join(done.stderr.split())
    assert warning.startswith(
        "Warning: no --holdout was given, so only agreement with cancer:1 on its training "
        "sample was checked"
    ), warning
    gate = client.validation.promotion_facts("cancer", 2).latest_gate
    assert gate is not None and [c["kind"] for c in gate.report["checks"]] == ["agreement"]
    # With a holdout the metric is gated too, and there is nothing to warn about.
    done = _cli(
        client, "optimize", "cancer:1", "--prune", "--holdout", str(holdout), "--target", "label"
    )
    assert done.exit_code == 0, done.output
    assert "Warning" not in done.stderr


def test_loop_lineage_of_a_pruned_version_names_its_source(
    backend_settings: Settings, tmp_path: Path
) -> None:
    """`shipyard loop lineage` of bc-gb:2 (pruned from bc-gb:1) shows the optimization step
    and the data snapshot and run of the version it was made from."""
    client = Shipyard(backend_settings)
    try:
        model, Xtr, Xte, yte = MAKERS["boosting"]()
        with client.tracker.start_run("bc") as run:
            run.log_dataset(Xtr, snapshot=True, name="bc", source="cancer.csv")
            client.registry.log_model(model, "bc-gb", sample=Xtr, run_id=run.id)
        holdout = tmp_path / "holdout.csv"
        Xte.assign(label=np.asarray(yte)).to_csv(holdout, index=False)
        done = _cli(
            client, "optimize", "bc-gb:1", "--prune",
            "--holdout", str(holdout), "--target", "label", "--max-drop", "accuracy:0.02",
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        shown = _cli(client, "loop", "lineage", "bc-gb:2")
        assert shown.exit_code == 0, shown.output
        assert "optimized:   from bc-gb:1 by pruning" in shown.stdout
        assert "snapshot:    bc:1" in shown.stdout
        assert "data:        cancer.csv" in shown.stdout
        source = _cli(client, "loop", "lineage", "bc-gb:1")
        assert "optimized:" not in source.stdout and "snapshot:    bc:1" in source.stdout
    finally:
        client.close()


def test_a_quantized_graph_keeps_feeding_renamed_and_dropped_columns(client: Shipyard) -> None:
    """A pipeline whose graph inputs are renamed columns (``monthly charges ($)``), with
    text imputed in the graph and a date it drops: the quantized graph keeps the map."""
    model, X = everyday("dropped-date")
    _, y = churn()
    client.registry.log_model(model.fit(X, y), "churn", sample=X)
    result = optimize_model(client.registry, client.validation, "churn:1", Quantize("int8"))
    quantized = client.registry.load(result.version.ref)
    assert quantized.flavor == "onnx"
    graph = onnx.load_model_from_string(source_graph(client.registry, result.version))
    assert INPUTS_METADATA in {p.key for p in graph.metadata_props}
    original = client.registry.load("churn:1")
    requests = json.loads(
        X.head(50).assign(signup=X["signup"].astype(str)).to_json(orient="records")
    )
    agree = quantized.predict(requests) == original.predict(requests)
    assert agree.mean() >= 0.95, agree.mean()
    np.testing.assert_allclose(
        quantized.predict_proba(requests), original.predict_proba(requests), atol=0.05
    )


def test_fp16_refuses_a_graph_it_cannot_convert_with_a_reason(client: Shipyard) -> None:
    """float16 casts feed the graph's imputer a float16 tensor it has no kernel for: refused
    before anything is registered, with the reason, not as an unloadable new version."""
    model, X = everyday("dropped-date")
    _, y = churn()
    client.registry.log_model(model.fit(X, y), "churn", sample=X)
    with pytest.raises(InvalidInputError, match=r"float16 conversion failed: .*Imputer"):
        optimize_model(client.registry, client.validation, "churn:1", Quantize("fp16"))
    assert [v.version for v in client.registry.models.list_versions("churn")] == [1]


def test_a_student_learns_from_a_teacher_that_drops_a_column(client: Shipyard) -> None:
    """The stored reference leaves out the date the teacher never reads (``unused``); the
    student keeps the teacher's pipeline, so it is fitted with the column present (as
    missing values) and serves requests without it."""
    from shipyard.optimization.service import Distill

    model, X = everyday("dropped-date")
    _, y = churn()
    client.registry.log_model(model.fit(X, y), "churn", sample=X)
    result = optimize_model(
        client.registry,
        client.validation,
        "churn:1",
        Distill("sklearn.linear_model:LogisticRegression?max_iter=500"),
    )
    student = client.registry.load(result.version.ref)
    requests = json.loads(X.head(20).drop(columns=["signup"]).to_json(orient="records"))
    assert len(student.predict(requests)) == 20
