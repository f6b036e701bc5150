"""Deployments: traffic per variant, guards, the canary's steps, rollbacks, shadows."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from starlette.responses import Response

from shipyard.clock import utc_now
from shipyard.monitoring.durations import floor_time
from shipyard.ui.variants import variant_figures
from shipyard.ui.web import render, state

router = APIRouter()

#: The changes that took a version out of service, shown as the rollback history.
ROLLBACK_ACTIONS = ("rollback", "auto_rollback", "abort_canary", "kill")
#: How far back the per-variant figures look.
VARIANT_RANGE = timedelta(hours=24)
VARIANT_STEP = timedelta(hours=1)


@router.get("/deployments")
def deployments_page(request: Request) -> Response:
    deployments = state(request).client.deployments.list_deployments()
    return render(request, "deployments.html", deployments=deployments)


@router.get("/deployments/{name}")
def deployment_page(request: Request, name: str) -> Response:
    client = state(request).client
    service = client.deployments
    d = service.get(name)
    changes = service.changes(name, limit=50)
    rollbacks = [c for c in changes if c.action in ROLLBACK_ACTIONS or "rollback" in c.action]
    counters = client.rollouts.counters(name, d.epoch)
    until = utc_now()
    since = floor_time(until - VARIANT_RANGE, VARIANT_STEP)
    # The versions it serves now, over the last day: the canary's own figures beside the
    # primary's, estimated while its labels are still missing.
    # Only its own rows: not a batch job's of the same version, not direct traffic.
    figures = variant_figures(
        client, d.model, since, until, VARIANT_STEP, versions=d.versions(), deployment=d.name
    )
    return render(
        request,
        "deployment.html",
        d=d,
        changes=changes,
        rollbacks=rollbacks,
        counters=counters,
        gap=service.alias_gap(d),
        unserved=service.unserved(name),
        figures=figures,
        model_name=d.model,
        variant_range=VARIANT_RANGE,
    )
