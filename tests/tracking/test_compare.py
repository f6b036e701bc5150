"""Comparing runs: params with differences, final metrics, stepped metrics' last/best/steps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

from shipyard.errors import InvalidInputError, RunNotFoundError
from shipyard.store.database import Database
from shipyard.store.run_store import RunStore
from shipyard.tracking.compare import compare_runs, lower_is_better
from shipyard.tracking.runs import Tracker


@pytest.fixture
def tracker(database: Database) -> Iterator[Tracker]:
    tracker = Tracker(RunStore(database), actor="ann")
    yield tracker
    tracker.writer.close()


def _train(tracker: Tracker, alpha: float, epochs: int) -> tuple[str, list[float]]:
    """SGD on iris, one partial_fit per epoch, validation accuracy and loss logged per step."""
    X, y = load_iris(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0, stratify=y)
    model = SGDClassifier(alpha=alpha, random_state=0)
    accuracies = []
    with tracker.start_run("iris", name=f"alpha={alpha}") as run:
        run.log_params({"alpha": alpha, "loss": "hinge", "epochs": epochs})
        for epoch in range(epochs):
            model.partial_fit(X_train, y_train, classes=[0, 1, 2])
            accuracy = model.score(X_val, y_val)
            accuracies.append(accuracy)
            run.log_metrics({"val_accuracy": accuracy, "val_error": 1 - accuracy}, step=epoch)
        run.log_metric("final_accuracy", accuracies[-1])
    return run.id, accuracies


def test_compare_marks_differences_and_summarises_steps(tracker: Tracker) -> None:
    a, acc_a = _train(tracker, 0.0001, 5)
    b, acc_b = _train(tracker, 0.01, 3)
    comparison = compare_runs(tracker.store, [a[:12], b])
    assert [r.id for r in comparison.runs] == [a, b]
    params = {p.key: p for p in comparison.params}
    assert params["alpha"].differs and params["epochs"].differs
    assert not params["loss"].differs and params["loss"].values == {a: "hinge", b: "hinge"}
    metrics = {m.key: m for m in comparison.metrics}
    accuracy = metrics["val_accuracy"]
    assert accuracy.stepped and accuracy.goal == "max"
    assert accuracy.values[a].last == pytest.approx(acc_a[-1])  # type: ignore[union-attr]
    assert accuracy.values[a].best == pytest.approx(max(acc_a))  # type: ignore[union-attr]
    assert accuracy.values[a].steps == 5 and accuracy.values[b].steps == 3  # type: ignore[union-attr]
    error = metrics["val_error"]
    assert error.goal == "min"
    assert error.values[b].best == pytest.approx(1 - max(acc_b))  # type: ignore[union-attr]
    assert not metrics["final_accuracy"].stepped


def test_a_metric_only_one_run_has(tracker: Tracker) -> None:
    with tracker.start_run("x") as a:
        a.log_metric("only_here", 1.0)
    with tracker.start_run("x") as b:
        pass
    metric = compare_runs(tracker.store, [a.id, b.id]).metrics[0]
    assert metric.values[b.id] is None and metric.differs


def test_bad_comparisons(tracker: Tracker) -> None:
    with tracker.start_run("x") as a:
        pass
    with pytest.raises(InvalidInputError, match="at least two runs"):
        compare_runs(tracker.store, [a.id])
    with pytest.raises(InvalidInputError, match="twice"):
        compare_runs(tracker.store, [a.id, a.id])
    with pytest.raises(RunNotFoundError, match="'feedbeef'"):
        compare_runs(tracker.store, [a.id, "feedbeef"])


def test_which_metrics_are_better_lower() -> None:
    assert lower_is_better("val_loss") and lower_is_better("rmse") and lower_is_better("mae")
    assert not lower_is_better("accuracy") and not lower_is_better("f1_score")
    # Boosters' losses are named after the data set they were measured on.
    assert lower_is_better("valid_0-l2") and lower_is_better("valid_1-l1")
    assert lower_is_better("validation_0-rmse") and lower_is_better("valid_0-huber")
    assert not lower_is_better("valid_0-auc") and not lower_is_better("valid_0-ndcg@5")
