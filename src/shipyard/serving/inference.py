"""The one path every protocol's prediction goes through.

``/predict``, ``/invocations`` and ``/v2/.../infer`` only parse their payload
and format their answer; :class:`Inference` does the rest: pick the served
model once (so a hot swap mid-request cannot mix versions), validate and
predict in a worker thread (the event loop keeps answering health checks and
timeouts), count predictions by class, and tell the observers.

It is also the seam for later speed-ups: an adaptive batcher or a prediction
cache replaces or wraps :meth:`Inference.run` without any protocol noticing.

Example:
    >>> inference = Inference(runtime, metrics, observers=())        # doctest: +SKIP
    >>> served, X, result = await inference.run(                      # doctest: +SKIP
    ...     [{"sepal_length": 5.1, ...}], request_id="r1", protocol="predict", started=t0)
    >>> result.labels                                                 # doctest: +SKIP
    array(['setosa'], dtype=object)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import numpy as np
import pandas as pd

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import ConfigError
from shipyard.registry.signature import ColumnBatch
from shipyard.serving.contract_guard import ContractGuard
from shipyard.serving.fastpath import FastPath
from shipyard.serving.feature_batch import FeatureBatcher
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.observer import (
    PredictionEvent,
    PredictionObserver,
    ProtocolName,
    notify,
    wants_frames,
)
from shipyard.serving.runtime import ModelRuntime, Prediction, ServedModel

DEFAULT_VARIANT = "default"


class Inference:
    """Validates, predicts, counts and observes; shared by every protocol."""

    def __init__(
        self,
        runtime: ModelRuntime,
        metrics: ServingMetrics,
        *,
        observers: Sequence[PredictionObserver] = (),
        variant: str = DEFAULT_VARIANT,
        fast: FastPath | None = None,
        contract: ContractGuard | None = None,
        clock: Clock = SYSTEM_CLOCK,
        features: FeatureBatcher | None = None,
    ) -> None:
        self.runtime = runtime
        self.features = features  # fetches a feature-backed model's inputs by entity key
        self.clock = clock  # the wall time observers (the prediction log) are stamped with
        self.fast = fast
        self.contract = contract
        self.metrics = metrics
        self.observers = tuple(observers)
        # Observers that all take the validated matrix spare each request a DataFrame.
        self._frames = wants_frames(self.observers)
        self.variant = variant

    async def run(
        self,
        data: Any,
        *,
        request_id: str,
        protocol: ProtocolName,
        started: float,
        served: ServedModel | None = None,
    ) -> tuple[ServedModel, pd.DataFrame | np.ndarray | ColumnBatch, Prediction]:
        """Predict ``data`` (anything :meth:`Signature.coerce` accepts) on the served model.

        ``started`` is the request's arrival on the ``time.perf_counter`` clock.
        Pass ``served`` when the caller already picked the model (to read its
        signature while parsing), so parsing and predicting use the same version.
        """
        if served is None:
            served = self.runtime.require()
        joined = None
        spec = served.model.manifest.features
        if spec is not None:
            if self.features is None:
                raise ConfigError(
                    f"{served.ref} fetches its features from the feature store, which this "
                    "server was not given."
                )
            # One online read per view for the requests that came together (503 if the
            # store is unreachable, this request's own 422 if its key has no features).
            joined = await self.features.fetch(spec, data)
            data = joined
        flags = None
        if self.contract is not None:  # a database read on a version's first request
            flags = await anyio.to_thread.run_sync(self.contract.check, served, data)
        if self.fast is not None:  # batching and/or the prediction cache
            X, result = await self.fast.predict(served, data)
        else:
            # abandon_on_cancel: a request timeout answers 504 at once instead of waiting
            # for the model call to return; the thread finishes in the background.
            X, result = await anyio.to_thread.run_sync(served.predict, data, abandon_on_cancel=True)
        served.count(self.metrics, result.labels)
        if self.observers:
            latency = time.perf_counter() - started
            columns = None
            if isinstance(X, ColumnBatch) and self._frames:
                X = X.frame()  # the prediction log alone takes the columns as they are
            elif isinstance(X, np.ndarray):
                if self._frames:  # named columns, built here
                    X = pd.DataFrame(X, columns=served.columns, copy=False)
                else:  # the observers name the matrix's columns themselves
                    columns = served.columns
            request_columns = None
            if joined is not None and spec is not None:
                # The log keeps the feature values the model saw (the inputs, whatever
                # their form), the keys they were fetched by and the request-time fields,
                # so a skew check can rebuild those rows. Handed over beside the inputs:
                # the log puts them in front when it writes a flush's events, column-wise
                # (a frame built, or a column inserted, per request cost more than the
                # rest of the request's logging).
                request_columns = _request_columns(spec, joined, served.signature.names)
            notify(
                self.observers,
                PredictionEvent(
                    request_id=request_id,
                    timestamp=self.clock.now().timestamp() - latency,
                    model=served.name,
                    version=served.version,
                    variant=self.variant,
                    protocol=protocol,
                    inputs=X,
                    predictions=result.labels,
                    probabilities=result.probabilities,
                    classes=None if served.classes is None else tuple(served.classes.tolist()),
                    latency_seconds=latency,
                    contract_violations=flags,
                    input_columns=columns,
                    request_columns=request_columns,
                ),
            )
        return served, X, result


def _request_columns(
    spec: Mapping[str, Any], joined: Any, inputs: Sequence[str]
) -> dict[str, Any] | None:
    """The entity keys and request-time fields sent, per row, that the inputs lack."""
    sent = [*spec["join_keys"], *spec.get("request_fields", [])]
    columns: dict[str, Any] = {}
    for key in (k for k in sent if k not in inputs):
        if isinstance(joined, pd.DataFrame):
            columns[key] = joined[key].to_numpy()
        else:
            rows = [joined] if isinstance(joined, Mapping) else joined
            columns[key] = [row.get(key) for row in rows]
    return columns or None
