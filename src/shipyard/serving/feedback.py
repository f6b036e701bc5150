"""``POST /feedback``: late-arriving ground truth, joined to logged predictions.

Body: one ``{"request_id": ..., "label": ..., "row": 0}`` or a list of them
(``row`` picks the row of a multi-row request, 0-based). The answer counts
what was accepted and lists the request ids the log does not know (yet):
those labels are kept too and join once their predictions are flushed. The body
must be ``application/json`` (415 otherwise) with no key given twice.

Example:
    >>> router = build_router(log, "iris", api_key=guard)  # doctest: +SKIP
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from shipyard.monitoring.feedback import FeedbackBody, FeedbackOut, record_feedback
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.serving.media import JsonBodyRoute
from shipyard.serving.security import ApiKeyGuard


def build_router(log: PredictionLog, model: str, *, api_key: ApiKeyGuard) -> APIRouter:
    router = APIRouter(
        tags=["monitoring"], dependencies=[Depends(api_key)], route_class=JsonBodyRoute
    )

    # A plain def: FastAPI runs it in its thread pool, since recording labels
    # flushes the log and touches storage.
    @router.post("/feedback", summary="Record ground-truth labels for answered requests")
    def feedback(body: FeedbackBody) -> FeedbackOut:
        return FeedbackOut.of(record_feedback(log, body, model=model))

    return router
