"""Module-level Python API: ``shipyard.log_model``, ``shipyard.load_model``...

These functions use a default :class:`~shipyard.Shipyard` client whose
settings are read once, the first time one of them is called (environment
variables and ``shipyard.toml``). Call :func:`configure` to use other
settings, e.g. in tests or notebooks that point at a shared server.

>>> import shipyard                                              # doctest: +SKIP
>>> with shipyard.start_run("iris") as run:                      # doctest: +SKIP
...     run.log_metric("accuracy", 0.97)
...     shipyard.log_model(clf, "iris", sample=X, alias="production")
>>> shipyard.load_model("iris").predict({"sepal_length": 5.1, ...})  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from shipyard import features as _features
from shipyard._client import Shipyard
from shipyard.config import Settings
from shipyard.registry.model import LoadedModel
from shipyard.store import records
from shipyard.tracking.runs import ActiveRun

if TYPE_CHECKING:
    from shipyard.rollout.service import Deployments

_default: Shipyard | None = None


def configure(settings: Settings | None = None) -> Shipyard:
    """Replace the default client (``None``: re-read settings from the environment)."""
    global _default
    if _default is not None:
        _default.close()
    _default = Shipyard(settings)
    return _default


def client() -> Shipyard:
    """The default client, created from the environment on first use."""
    return _default if _default is not None else configure()


# shipyard.features.training_set(...) and friends use this client's feature store,
# so a training set built inside shipyard.start_run(...) is recorded on that run.
_features.use_default(lambda: client().features)


def start_run(
    experiment: str | None = None,
    *,
    name: str | None = None,
    parent: ActiveRun | str | None = None,
    nested: bool = False,
    tags: dict[str, str] | None = None,
    system_metrics: bool = False,
    system_metrics_interval: float = 10.0,
) -> ActiveRun:
    """Start a tracking run; use it as a context manager.

    ``nested=True`` makes it a child of the active run (``parent=run`` of any
    run); ``system_metrics=True`` samples CPU and memory in the background.
    """
    return client().tracker.start_run(
        experiment,
        name=name,
        parent=parent,
        nested=nested,
        tags=tags,
        system_metrics=system_metrics,
        system_metrics_interval=system_metrics_interval,
    )


def search_runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: list[str] | None = None,
    max_results: int = 1000,
) -> pd.DataFrame:
    """Runs matching ``filter`` (MLflow's syntax), one row each, run in SQL.

    >>> shipyard.search_runs("iris", filter="metrics.accuracy > 0.9 and params.C = '1.0'",
    ...                      order_by=["metrics.accuracy DESC"], max_results=10)  # doctest: +SKIP
    """
    from shipyard.tracking.search import search_runs as search

    shipyard = client()
    shipyard.tracker.writer.flush()  # metrics this process logged are searchable at once
    return search(shipyard.run_search, experiment, filter, order_by, max_results)


def autolog(
    disable: bool = False,
    *,
    experiment: str | None = None,
    log_models: bool = True,
    register_as: str | None = None,
    max_candidates: int = 200,
) -> None:
    """Log scikit-learn, XGBoost and LightGBM training by itself; ``disable=True`` stops it.

    Each outermost ``fit`` (or ``xgboost.train``/``lightgbm.train``) logs its
    params, training scores, per-iteration evaluation metrics, signature and
    model into the active run, or a run of its own in ``experiment``; a search
    logs a parent run and one child run per candidate (at most
    ``max_candidates``). ``register_as="churn"`` also registers every fitted
    model as a new version of ``churn``.

    >>> shipyard.autolog()                                   # doctest: +SKIP
    >>> GridSearchCV(SVC(), {"C": [1, 10]}).fit(X, y)        # doctest: +SKIP
    """
    from shipyard.tracking.autolog import Hooks
    from shipyard.tracking.autolog import autolog as switch

    switch(
        client().tracker,
        disable=disable,
        experiment=experiment,
        log_models=log_models,
        register_as=register_as,
        max_candidates=max_candidates,
        hooks=Hooks(signature=_signature, register=_register),
    )


def _frame(X: Any) -> pd.DataFrame:
    """The training inputs autolog saw, as a frame with text column names, not copied."""
    import numpy as np

    if not isinstance(X, pd.DataFrame):
        array = np.asarray(X)
        X = pd.DataFrame(array.reshape(len(array), -1), copy=False)
    # Copy-on-write: renaming shares the columns' data.
    return X.rename(columns=str)


def _signature(model: Any, X: Any) -> dict[str, Any]:
    import numpy as np

    from shipyard.registry.flavors.sklearn_inputs import input_facts
    from shipyard.registry.package import PROBE_ROWS
    from shipyard.registry.signature import Signature, infer_output, infer_signature

    # Every row the model was fitted on: a missing value or a category that first
    # shows up late in the data (sorted by date, say) belongs to the signature too.
    inputs = infer_signature(_frame(X))
    inputs = inputs.widened(input_facts(model, inputs.names))
    classes = getattr(model, "classes_", None)
    predictions = None
    if hasattr(model, "predict"):
        # Evenly spaced rows tell the output, except labels without classes_ (a clusterer).
        rows = np.linspace(0, len(X) - 1, min(len(X), PROBE_ROWS)).astype(np.int64)
        predictions = np.asarray(model.predict(_rows(X, rows)))
        if classes is None and predictions.ndim == 1 and predictions.dtype.kind not in "fc":
            predictions = np.asarray(model.predict(X))
    return Signature(inputs.inputs, infer_output(predictions, classes)).to_dict()


def _rows(X: Any, rows: Any) -> Any:
    """Rows ``rows`` (positions) of the training inputs, in the type the model was fitted on."""
    import numpy as np

    return X.iloc[rows] if isinstance(X, (pd.DataFrame, pd.Series)) else np.asarray(X)[rows]


def _register(model: Any, name: str, X: Any) -> records.ModelVersion:
    # The whole training data: the signature, the data contract and the drift
    # reference are learnt from all of it (the registry bounds what it predicts on
    # and the rows it keeps).
    return log_model(model, name, sample=_frame(X))


def log_model(
    model: Any,
    name: str,
    *,
    sample: pd.DataFrame,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    alias: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    flavor: str | None = None,
    trusted_pickle: bool = False,
    optimize: bool | None = None,
) -> records.ModelVersion:
    """Package ``model`` and register it as the next version of ``name``.

    ``sample`` is the training inputs (all of them, or a large random sample):
    the signature (columns, types, nullability, ranges, categories), the data
    contract and the drift reference are inferred from every row of it, which
    is cheap. A few rows (MLflow's ``input_example``) are not enough: a column
    they show no missing value in is non-nullable, and a category they lack is
    one ``shipyard validate data`` reports. For a scikit-learn model, the
    categories its encoders know and the columns its imputers fill are added
    (see :mod:`~shipyard.registry.flavors.sklearn_inputs`). Inside :func:`start_run`
    the version links to the run, its params, and the training dataset
    fingerprint the run logged; a feature-store training set built in the run
    (:func:`shipyard.features.training_set`) puts its feature references in the
    manifest, so a server fetches them by entity key. ``alias`` moves that
    alias to the new version. By default it is also compiled to ONNX, verified
    against the original on ``sample``; servers use the compiled form only when
    it agrees (``shipyard models show`` says which runtime serves and why). ``optimize=False`` skips
    it; ``optimize=True`` insists (a missing onnx extra raises, and a model that
    does not compile warns).
    """
    shipyard = client()
    run = shipyard.tracker.active_run
    fingerprint = None
    features = run.features if run is not None else None
    if run is not None:
        training = run.datasets.get("training")
        fingerprint = training.to_dict() if training else None
        if params:
            run.log_params(params)
        if metrics:
            run.log_metrics(metrics)
        run.flush()
    version = shipyard.registry.log_model(
        model,
        name,
        sample=sample,
        metrics=metrics,
        params=params,
        run_id=run.id if run else None,
        data_fingerprint=fingerprint,
        description=description,
        tags=tags,
        flavor=flavor,
        trusted_pickle=trusted_pickle,
        optimize=optimize,
        features=features,
    )
    if features:
        # A breaking change to these views is refused while this version uses them.
        shipyard.feature_store.add_consumers(name, version.version, features["views"])
    if optimize and version.tags.get("onnx_status") != "verified":
        warnings.warn(
            f"{version.ref} is registered, but not compiled to ONNX "
            f"({version.tags.get('onnx_status')}: {version.tags.get('onnx_detail')}); "
            "servers answer with the original model.",
            stacklevel=2,
        )
    if alias is not None:
        shipyard.registry.set_alias(name, alias, version.version)
        version = shipyard.models.get_version(name, version.version)
    return version


def load_model(ref: str, *, trusted_pickle: bool = False) -> LoadedModel:
    """Load ``iris`` (its production alias), ``iris@staging`` or ``iris:3``."""
    return client().registry.load(ref, trusted_pickle=trusted_pickle)


def set_alias(
    name: str, alias: str, version: int, *, reason: str | None = None, force: bool = False
) -> int | None:
    """Point ``alias`` of ``name`` at ``version``; returns the previous version.

    Moving ``production`` to a version whose gates failed or that lacks its
    approvals is refused unless ``force=True`` with a written ``reason``.
    """
    return client().registry.set_alias(name, alias, version, reason=reason, force=force)


def deployments() -> Deployments:
    """Deployments (canary, A/B, shadows, promote, rollback) on the default client.

    >>> shipyard.deployments().set_canary("web", 4, 10)      # doctest: +SKIP
    """

    shipyard = client()
    return shipyard.deployments
