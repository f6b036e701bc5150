"""``POST /feedback``: late-arriving ground truth, joined to logged predictions.

Body: one ``{"request_id": ..., "label": ..., "row": 0}`` or a list of them
(``row`` picks the row of a multi-row request, 0-based; ``request_id`` is the
id the prediction was answered with). The body must be ``application/json``
(415 otherwise) with no key given twice. Labels are validated, then queued for
the prediction log's background writer like predictions, so a post costs the
same however many came before it; the answer says how many were queued (503
when the queue is full). They join their predictions in bulk when the monitor
job or a performance report runs.

Example:
    >>> router = build_router(log, "iris", api_key=guard)  # doctest: +SKIP
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from shipyard.monitoring.feedback import FeedbackIn, FeedbackOut, queue_feedback
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.serving.media import JsonBodyRoute
from shipyard.serving.security import ApiKeyGuard


def build_router(log: PredictionLog, model: str, *, api_key: ApiKeyGuard) -> APIRouter:
    router = APIRouter(
        tags=["monitoring"], dependencies=[Depends(api_key)], route_class=JsonBodyRoute
    )

    # A plain def: FastAPI runs it in its thread pool (validation uses pandas).
    @router.post("/feedback", summary="Record ground-truth labels for answered requests")
    def feedback(body: FeedbackIn | list[FeedbackIn]) -> FeedbackOut:
        return FeedbackOut(accepted=queue_feedback(log, body, model=model))

    return router
