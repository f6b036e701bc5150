"""``POST /feedback``: late-arriving ground truth, joined to logged predictions.

Body: one ``{"request_id": ..., "label": ..., "row": 0}`` or a list of them
(``row`` picks the row of a multi-row request, 0-based; ``request_id`` is the
id the prediction was answered with). The body must be ``application/json``
(415 otherwise) with no key given twice. Labels are validated, then queued for
the prediction log's background writer like predictions, so a post costs the
same however many came before it; the answer says how many were queued (503
when the queue is full). They join their predictions in bulk when the monitor
job or a performance report runs. A label that is not one of a classifier's
classes answers 422 naming it and listing them. A server started with
``--no-prediction-log`` answers 409: feedback needs the prediction log.

Example:
    >>> router = build_router(log, "iris", api_key=guard)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends

from shipyard.errors import ConflictError
from shipyard.monitoring.feedback import FeedbackIn, FeedbackOut, queue_feedback
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.serving.media import JsonBodyRoute
from shipyard.serving.security import ApiKeyGuard


def build_router(
    log: PredictionLog,
    model: str,
    *,
    api_key: ApiKeyGuard,
    classes: Callable[[], Sequence[Any] | None] = lambda: None,
) -> APIRouter:
    """``classes`` returns the served model's classes (None for a regressor, or
    before it is loaded): a label that is none of them answers 422 listing them."""
    router = APIRouter(
        tags=["monitoring"], dependencies=[Depends(api_key)], route_class=JsonBodyRoute
    )

    # A plain def: FastAPI runs it in its thread pool (validation uses pandas).
    @router.post("/feedback", summary="Record ground-truth labels for answered requests")
    def feedback(body: FeedbackIn | list[FeedbackIn]) -> FeedbackOut:
        return FeedbackOut(accepted=queue_feedback(log, body, model=model, classes=classes()))

    return router


def build_disabled_router(*, api_key: ApiKeyGuard) -> APIRouter:
    """``POST /feedback`` of a server started with ``--no-prediction-log``: 409, saying why."""
    router = APIRouter(tags=["monitoring"], dependencies=[Depends(api_key)])

    @router.post("/feedback", summary="Feedback needs the prediction log (off on this server)")
    def feedback() -> None:
        raise ConflictError(
            "Feedback needs the prediction log, which this server runs without "
            "(--no-prediction-log): labels join logged predictions. Restart the server "
            "without --no-prediction-log to accept them."
        )

    return router
