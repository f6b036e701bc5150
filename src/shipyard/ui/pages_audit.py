"""The audit log, filtered by model, actor and action, newest first, a page at a time."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from shipyard.ui.web import render, state

router = APIRouter()

PAGE = 100


@router.get("/audit")
def audit_page(
    request: Request,
    model: str = "",
    actor: str = "",
    action: str = "",
    before: int | None = Query(default=None, ge=1),
) -> Response:
    audit = state(request).client.audit
    entries = audit.log(
        model=model or None, actor=actor or None, action=action or None, limit=PAGE, before=before
    )
    models, actors, actions = audit.facets()
    return render(
        request,
        "audit.html",
        entries=entries,
        filters={"model": model, "actor": actor, "action": action},
        models=models,
        actors=actors,
        actions=actions,
        more=len(entries) == PAGE,
    )
