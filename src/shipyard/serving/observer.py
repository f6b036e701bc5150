"""The seam through which every served prediction can be watched.

The app calls each configured :class:`PredictionObserver` once per answered
prediction request, on the event loop, after the model ran and before the
answer is sent. The prediction log (monitoring), shadow traffic and caches plug
in here; serving itself knows none of them. An observer must return at once:
queue the event and do the slow work elsewhere (a background writer).

Example:
    >>> class Count:
    ...     def __init__(self) -> None:
    ...         self.rows = 0
    ...     def observe(self, event: PredictionEvent) -> None:
    ...         self.rows += len(event.predictions)
    ...     def close(self) -> None:
    ...         pass
    >>> isinstance(Count(), PredictionObserver)
    True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from shipyard.registry.signature import ColumnBatch

logger = logging.getLogger("shipyard.serving")

ProtocolName = Literal["predict", "mlflow", "v2"]


@dataclass(frozen=True, slots=True)
class PredictionEvent:
    """One answered prediction request.

    ``inputs`` is the validated frame the model saw (signature order), one row
    per prediction; ``probabilities`` has one column per entry of ``classes``.
    An observer that sets ``takes_arrays = True`` may instead get the validated
    float matrix as ``inputs``, its column names in ``input_columns``, or a
    :class:`~shipyard.registry.signature.ColumnBatch` (see :func:`wants_frames`);
    every other observer always gets a frame.
    ``timestamp`` is when the request arrived (seconds since the epoch) and
    ``latency_seconds`` the time from arrival to the model's answer.
    """

    request_id: str
    timestamp: float
    model: str
    version: int
    variant: str
    protocol: ProtocolName
    inputs: pd.DataFrame | np.ndarray | ColumnBatch
    predictions: np.ndarray
    probabilities: np.ndarray | None
    classes: tuple[Any, ...] | None
    latency_seconds: float
    #: Per row, True where the input broke the data contract (``--contract-check
    #: count``); None when inputs were not checked.
    contract_violations: np.ndarray | None = None
    #: The deployment that answered (``serve --deployment``); None for direct traffic.
    deployment: str | None = None
    #: The column names when ``inputs`` is a matrix (observers with ``takes_arrays``).
    input_columns: pd.Index | None = None
    #: A feature-backed model's entity keys and request-time fields, per row (a list or
    #: an array per field), that ``inputs`` lacks: the log stores them in front of the
    #: inputs, as sent. None for a model that takes all its inputs in the request.
    request_columns: Mapping[str, Any] | None = None


@runtime_checkable
class PredictionObserver(Protocol):
    """Receives every prediction; ``observe`` must not block, ``close`` flushes."""

    def observe(self, event: PredictionEvent) -> None: ...

    def close(self) -> None: ...


def wants_frames(observers: Sequence[PredictionObserver]) -> bool:
    """Whether an observer needs ``inputs`` as a DataFrame (every one not saying otherwise).

    Building a one-row frame costs about as much as the rest of a request's own
    work; the prediction log takes the matrix and builds its columns in bulk.
    """
    return not all(getattr(o, "takes_arrays", False) for o in observers)


def notify(observers: Sequence[PredictionObserver], event: PredictionEvent) -> None:
    """Hand ``event`` to each observer; one failing observer never fails the request."""
    for observer in observers:
        try:
            observer.observe(event)
        except Exception:
            logger.exception("Prediction observer %r failed; the answer is sent anyway", observer)


def close_all(observers: Sequence[PredictionObserver]) -> None:
    """Flush and close each observer at shutdown, logging (not raising) failures."""
    for observer in observers:
        try:
            observer.close()
        except Exception:
            logger.exception("Prediction observer %r failed to close", observer)
