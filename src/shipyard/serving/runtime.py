"""The model a server answers with: loading, warm-up and atomic hot swap.

:class:`ModelRuntime` holds one :class:`ServedModel` at a time, in a single
attribute. A request reads that attribute once and uses what it got until it
answers, so swapping is one reference assignment: requests already running
finish on the old version, new ones get the new version, nobody sees a mix.

A background task polls the registry every ``poll_interval`` seconds for the
version the served reference resolves to (``iris`` = ``iris@production``).
When the alias moves, the new version is loaded and warmed up beside the old
one (in a worker thread, so requests keep flowing), then swapped in. If it
fails to load or warm up, the old one keeps serving; the failure is logged,
counted (``shipyard_model_swap_failures_total``) and not retried until the
alias moves again or ``/admin/reload`` forces it. A reference pinned to a
version (``iris:3``) is loaded once and never polled.

Example:
    >>> runtime = ModelRuntime(client.registry, "iris", metrics=ServingMetrics())  # doctest: +SKIP
    >>> await runtime.refresh()                      # doctest: +SKIP
    SwapOutcome(changed=True, version=3, previous=None, error=None)
    >>> runtime.require().version                    # doctest: +SKIP
    3
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import anyio
import numpy as np
import pandas as pd
from pydantic import BaseModel

from shipyard.background import BackgroundTask
from shipyard.errors import SchemaError, ShipyardError, UnscorableInputError
from shipyard.registry.array_input import array_input_model
from shipyard.registry.model import LoadedModel, furthest_out_of_range
from shipyard.registry.optimize import compiled_model, runtime_name
from shipyard.registry.refs import ModelRef, parse_ref
from shipyard.registry.service import Registry
from shipyard.registry.signature import ColumnBatch, ColumnSpec, DType, Signature
from shipyard.serving import schemas
from shipyard.serving.errors import ModelNotReadyError
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.workers import WorkerBoard
from shipyard.store import records

logger = logging.getLogger("shipyard.serving")
# What a model raises for input that passed the signature but that it cannot score.
SCORING_ERRORS = (ValueError, TypeError, ArithmeticError)

DEFAULT_POLL_INTERVAL = 2.0


#: A feature-backed model's request field dtype -> the signature dtype a V2 tensor of it has.
_REQUEST_DTYPES: dict[str, DType] = {
    "int32": "integer",
    "int64": "integer",
    "float32": "float",
    "float64": "float",
    "bool": "boolean",
    "string": "string",
    "timestamp": "datetime",
}


@dataclass(frozen=True)
class Prediction:
    """What the model answered for a batch of rows (in input order)."""

    labels: np.ndarray
    probabilities: np.ndarray | None


@dataclass
class ServedModel:
    """One loaded, warmed-up version with everything the request path precomputes.

    Immutable once built (by convention: nothing assigns to it after warm-up).
    """

    model: LoadedModel
    record: records.ModelVersion
    load_seconds: float
    record_model: type[BaseModel]
    class_keys: tuple[str, ...] | None
    # Per-class counters, resolved once: ``labels()`` takes a lock on every call.
    class_counters: dict[Any, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.record.model

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        return self.record.ref

    @cached_property
    def columns(self) -> pd.Index:
        """Input column names as a pandas Index, built once: constructing a DataFrame
        from a list of names makes a new string Index each time, ~0.3 ms per call."""
        return pd.Index(self.signature.names)

    @cached_property
    def column_set(self) -> frozenset[str]:
        """Input column names as a set, for finding fields the model does not take
        (a feature-backed model takes its entity keys and request-time fields)."""
        if self.request_fields is not None:
            return frozenset(self.request_fields)
        return frozenset(self.signature.names)

    @cached_property
    def request_fields(self) -> dict[str, str] | None:
        """A feature-backed model's request fields (keys, request-time), else None."""
        spec = self.model.manifest.features
        if spec is None:
            return None
        from shipyard.features.serving import request_fields

        return request_fields(spec)

    @cached_property
    def request_signature(self) -> Signature:
        """What a request carries: the model's signature, or for a feature-backed model
        its entity keys and request-time fields (the features are fetched, not sent)."""
        fields = self.request_fields
        if fields is None:
            return self.signature
        inputs = tuple(
            ColumnSpec(name, _REQUEST_DTYPES.get(dtype, "string")) for name, dtype in fields.items()
        )
        return Signature(inputs, self.signature.output)

    @property
    def signature(self) -> Signature:
        return self.model.signature

    @property
    def runtime(self) -> str:
        """What answers: ``onnxruntime`` (a verified ONNX graph), else the flavor's own."""
        return runtime_name(self.model)

    @property
    def classes(self) -> np.ndarray | None:
        return self.model.classes

    @property
    def has_proba(self) -> bool:
        return self.model.has_proba

    def predict(self, data: Any) -> tuple[pd.DataFrame | np.ndarray, Prediction]:
        """Validate ``data`` once, then predict labels (and probabilities if any).

        Runs in a worker thread. Returns the validated input too, for observers.
        """
        X = self.model.prepare(data)
        return X, self.score_checked(X)

    def score(self, X: Any) -> Prediction:
        """Labels and probabilities for validated ``X``, in one model call when possible
        (:meth:`LoadedModel.score <shipyard.registry.model.LoadedModel.score>`)."""
        return Prediction(*self.model.score(X))

    def score_checked(self, X: Any) -> Prediction:
        """:meth:`score`, with a model's refusal of the input turned into a named 422."""
        try:
            return self.score(X)
        except SCORING_ERRORS as exc:
            raise self._unscorable(X, exc) from exc

    def _unscorable(self, X: Any, exc: Exception) -> SchemaError:
        """Why input that passed the signature still broke the model, as a 422.

        The registry's checked path names one known cause (a category the model
        never saw); otherwise the model's own message is passed on with the ranges
        the training sample covered.
        """
        if isinstance(X, ColumnBatch):
            X = X.frame()
        try:
            self.model.predict(X)
        except SchemaError as named:
            return named
        except Exception:
            pass
        ranges = "; ".join(
            f"{c.name} {c.minimum:g}..{c.maximum:g}"
            for c in self.signature.inputs
            if c.minimum is not None and c.maximum is not None
        )
        seen = f" The training sample covered: {ranges}." if ranges else ""
        culprit = furthest_out_of_range(self.signature, X)
        furthest = ""
        if culprit is not None:
            name, value, row = culprit
            furthest = f" Furthest outside it: {name} = {value:g} at row {row} (0-based)."
        return UnscorableInputError(
            f"{self.ref} could not score this input ({type(exc).__name__}: {exc}). The values "
            f"have the right types but are outside what the model can handle.{seen}{furthest}",
            field=None if culprit is None else culprit[0],
            rows=None if culprit is None else [culprit[2]],
        )

    def count(self, metrics: ServingMetrics, labels: np.ndarray) -> None:
        """Add the predicted rows to ``shipyard_predictions_total`` by class."""
        if self.class_keys is None or labels.ndim != 1:
            self._counter(metrics, "").inc(len(labels))
            return
        if len(labels) == 1:
            self._counter(metrics, labels[0]).inc()
            return
        values, counts = np.unique(labels, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self._counter(metrics, value).inc(count)

    def _counter(self, metrics: ServingMetrics, label: Any) -> Any:
        key = label.item() if isinstance(label, np.generic) else label
        counter = self.class_counters.get(key)
        if counter is None:
            counter = metrics.predictions.labels(self.name, str(self.version), str(key))
            self.class_counters[key] = counter
        return counter


@dataclass(frozen=True)
class SwapOutcome:
    """Result of one registry check: did the served version change, and to what."""

    changed: bool
    version: int | None
    previous: int | None = None
    error: str | None = None


def load_served_model(
    registry: Registry,
    record: records.ModelVersion,
    *,
    trusted_pickle: bool = False,
    onnx: bool = True,
) -> ServedModel:
    """Load ``record``'s version, precompute request schemas, and warm it up.

    ``onnx``: answer with the version's verified ONNX graph when it has one
    (``shipyard serve --no-onnx`` passes False: always the original model).

    The warm-up predicts one row built from the signature (and its probabilities),
    so the first real request does not pay for lazy initialisation, and a version
    that cannot predict at all never gets swapped in.
    """
    start = time.perf_counter()
    model = registry.load(record.ref, trusted_pickle=trusted_pickle)
    if onnx:  # a verified ONNX graph (compiled at registration) answers instead
        model = compiled_model(registry, record, model)
    # Otherwise a scikit-learn model fitted on a DataFrame skips building one per request.
    model = array_input_model(model)
    signature = model.signature
    classes = model.classes
    features = model.manifest.features
    if features is not None:  # the caller sends keys and request-time fields only
        from shipyard.features.serving import request_fields

        record_model = schemas.request_model(request_fields(features), record.model)
    else:
        record_model = schemas.record_model(signature, record.model)
    served = ServedModel(
        model=model,
        record=record,
        load_seconds=0.0,
        record_model=record_model,
        class_keys=None if classes is None else tuple(str(c) for c in np.asarray(classes)),
    )
    served.predict([schemas.warmup_record(signature)])
    served.load_seconds = time.perf_counter() - start
    return served


def input_changes(old: Signature, new: Signature) -> list[str]:
    """How ``new`` takes requests differently from ``old``, in words (empty: the same).

    Only what a request must change is compared (columns, types, whether null is
    allowed); the ranges and categories seen in training are not requirements.
    """
    before = {c.name: c for c in old.inputs}
    after = {c.name: c for c in new.inputs}
    changes = [f"new column {c.name} ({c.dtype})" for c in new.inputs if c.name not in before]
    changes += [f"no more column {c.name}" for c in old.inputs if c.name not in after]
    for column in new.inputs:
        was = before.get(column.name)
        if was is None:
            continue
        if was.dtype != column.dtype:
            changes.append(f"{column.name} is now {column.dtype} (was {was.dtype})")
        if was.nullable != column.nullable:
            allowed = "now allows" if column.nullable else "no longer allows"
            changes.append(f"{column.name} {allowed} missing values")
    if not changes and old.names != new.names:
        changes.append(f"column order is now {', '.join(new.names)}")
    return changes


def freeze_long_lived_objects() -> None:
    """Take every object alive now out of the cyclic garbage collector's sight.

    With the libraries and a model loaded, a full collection walks over a million
    objects: measured here, it paused the event loop 150-250 ms every few seconds
    under load (the p99 of a one-client benchmark). Objects made later (each
    request's garbage) are collected as usual. A frozen object is still freed by
    reference counting once nothing holds it (the first version after a swap);
    only reference cycles among frozen objects stay for good, which is why it is
    called once, when the first model is loaded, never at a swap. Forked workers
    also keep sharing the pages of frozen objects, which a collection would write to.
    """
    gc.collect()
    gc.freeze()


class ModelRuntime:
    """Holds the served model and swaps it when the registry says so."""

    def __init__(
        self,
        registry: Registry,
        ref: str,
        *,
        metrics: ServingMetrics,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        trusted_pickle: bool = False,
        onnx: bool = True,
        board: WorkerBoard | None = None,
    ) -> None:
        self.registry = registry
        self.board = board if board is not None else WorkerBoard(None)
        self.ref: ModelRef = parse_ref(ref)
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.trusted_pickle = trusted_pickle
        self.onnx = onnx
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self._failed: tuple[int, str] | None = None  # (version, digest) that failed to load
        self._lock = asyncio.Lock()
        self._task = BackgroundTask(f"shipyard-model-runtime-{self.ref}")

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def polling(self) -> bool:
        """Whether the background task still runs: it ends once a pinned version loaded."""
        return self._task.running

    @property
    def follows_alias(self) -> bool:
        """True when the reference is an alias that can move (so it is polled)."""
        return self.ref.version is None

    def adopt(self, served: ServedModel) -> None:
        """Serve a model loaded elsewhere (a pre-fork parent), as if this runtime loaded it.

        The background task then finds the registry pointing at it and does not reload.
        """
        self._swap(served)

    def require(self) -> ServedModel:
        """The served model, or ModelNotReadyError (503) while none is loaded yet."""
        served = self.current
        if served is None:
            reason = f": {self.last_error}" if self.last_error else ""
            raise ModelNotReadyError(
                f"Model {self.ref} is not loaded yet{reason}. Retry shortly; /ready says "
                "when the server can answer."
            )
        return served

    def answering(self) -> list[ServedModel]:
        """Every loaded version that answers requests now (a deployment: each variant)."""
        return [] if self.current is None else [self.current]

    def require_all_ready(self) -> ServedModel:
        """Like :meth:`require`, and also every worker of this server is warm (``/ready``)."""
        served = self.require()
        ready, reason = self.board.all_ready()
        if not ready:
            raise ModelNotReadyError(f"Not ready: {reason}. Retry shortly.")
        return served

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task: first load, then polling (if the ref can move)."""
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            await self.refresh()
            if self.current is not None and not self.follows_alias:
                return  # a pinned version never changes
            await asyncio.sleep(self.poll_interval)

    # -- checking and swapping ----------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> SwapOutcome:
        """Check the registry once and swap if the reference points somewhere new.

        ``force`` retries a version that failed to load before (``/admin/reload``).
        """
        async with self._lock:
            previous = self.current.version if self.current is not None else None
            try:
                record = await anyio.to_thread.run_sync(self.registry.resolve, self.ref)
            except ShipyardError as exc:
                self.metrics.poll_errors.labels(self.name).inc()
                self.last_error = f"cannot resolve {self.ref}: {exc}"
                logger.error("Registry check for %s failed: %s", self.ref, exc)
                return SwapOutcome(False, previous, previous, error=str(exc))
            key = (record.version, record.manifest_digest)
            served = self.current
            if served is not None and key == (served.version, served.record.manifest_digest):
                return SwapOutcome(False, previous, previous)
            if key == self._failed and not force:
                return SwapOutcome(False, previous, previous, error=self.last_error)
            try:
                new = await anyio.to_thread.run_sync(self._load, record)
            except Exception as exc:  # any failure to load must leave the old model serving
                self._failed = key
                self.last_error = f"{record.ref} failed to load: {exc}"
                if served is not None:
                    self.metrics.swap_failures.labels(self.name).inc()
                    logger.error(
                        "Could not swap to %s (still serving %s): %s",
                        record.ref,
                        served.ref,
                        exc,
                        exc_info=exc,
                    )
                else:
                    logger.error("Could not load %s: %s", record.ref, exc, exc_info=exc)
                return SwapOutcome(False, previous, previous, error=str(exc))
            self._swap(new)
            return SwapOutcome(True, new.version, previous)

    def _load(self, record: records.ModelVersion) -> ServedModel:
        return load_served_model(
            self.registry, record, trusted_pickle=self.trusted_pickle, onnx=self.onnx
        )

    def _swap(self, new: ServedModel) -> None:
        old = self.current
        changes = [] if old is None else input_changes(old.signature, new.signature)
        if old is not None and changes:
            logger.warning(
                "%s takes different inputs than %s: %s. Requests are checked against the "
                "new signature from now on.",
                new.ref,
                old.ref,
                "; ".join(changes),
            )
        # The swap itself: one reference assignment. In-flight requests hold `old`.
        self.current = new
        if old is None:
            # Only the first model: freezing at a swap would freeze `old` too (and
            # whatever requests hold), and frozen objects in a reference cycle (a
            # request schema class, a model's own cycles) are never freed. A version
            # swapped in later stays with the collector, which walks its few objects
            # quickly; the libraries it walked before are frozen by now.
            freeze_long_lived_objects()
            self.board.mark_ready()
        self._failed = None
        self.last_error = None
        m = self.metrics
        m.model_info.labels(new.name, str(new.version), str(self.ref), new.model.flavor).set(1)
        m.model_load_seconds.labels(new.name, str(new.version)).set(new.load_seconds)
        m.model_ready.set(1)
        if old is not None:
            m.swaps.labels(new.name).inc()
            old_labels = (old.name, str(old.version), str(self.ref), old.model.flavor)
            if m.multiprocess_dir is None:
                m.model_info.remove(*old_labels)
            else:  # per-process files cannot drop a series; mark it off instead
                m.model_info.labels(*old_labels).set(0)
            logger.info(
                "Now serving %s (was %s); loaded and warmed up in %.2f s",
                new.ref,
                old.ref,
                new.load_seconds,
            )
        else:
            logger.info("Serving %s; loaded and warmed up in %.2f s", new.ref, new.load_seconds)
