"""Experiments and runs: the runs table, a run's page, and runs compared.

The table's filters, sort and page are the URL's query string (a person can
bookmark it); htmx swaps only the table when they change. A run's page draws
every stepped metric; the comparison overlays the runs' metrics on one chart
per metric and marks the params that differ. A run id may be the 12-character
prefix lists show (:mod:`shipyard.ui.run_ids`).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import RedirectResponse, Response

from shipyard.errors import InvalidInputError, RunNotFoundError
from shipyard.store.run_query import RunPage, RunQuery
from shipyard.tracking.artifacts import read_artifact
from shipyard.ui.artifact_view import PREVIEW_BYTES, ArtifactView, content_type, preview_of
from shipyard.ui.charts import Series, line_chart
from shipyard.ui.filters import columns, parse_status
from shipyard.ui.run_ids import full_run_id
from shipyard.ui.web import render, state

router = APIRouter()

PAGE_SIZES = (25, 50, 100, 200)
#: Metric columns shown before the user picks any.
DEFAULT_METRIC_COLUMNS = 4
MAX_COMPARED = 10
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")


@router.get("/runs")
def runs_page(
    request: Request,
    experiment: str = "",
    status: str = "",
    filter: str = "",
    tag: list[str] = Query(default=[]),
    metric: str = "",
    metrics: str | None = None,
    params: str = "",
    sort: str = "start_time",
    desc: bool = True,
    tree: bool = True,
    page: int = Query(default=1, ge=1),
    size: int = Query(default=50, ge=1, le=max(PAGE_SIZES)),
) -> Response:
    if metric or any(tag):
        # The table's old fields: refused by name rather than silently ignored.
        raise HTTPException(
            400,
            "The runs table takes one filter now, in MLflow's syntax: write e.g. "
            "filter=metrics.accuracy > 0.9 and tags.team = 'risk' (not metric= or tag=).",
        )
    ui = state(request)
    queries = ui.client.run_queries
    metric_keys, param_keys = queries.recent_keys()
    chosen_metrics = (
        columns(metrics) if metrics is not None else metric_keys[:DEFAULT_METRIC_COLUMNS]
    )
    query = RunQuery(
        experiment=experiment or None,
        status=parse_status(status),
        filter=filter.strip() or None,
        metric_columns=tuple(chosen_metrics),
        param_columns=tuple(columns(params)),
        order_by=sort,
        descending=desc,
        offset=(page - 1) * size,
        limit=size,
        tree=tree,
    )
    partial = (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Target") == "runs-table"
    )
    try:
        result = queries.page(query)
    except InvalidInputError as exc:
        # A filter that does not parse: the page says why where the table would be
        # (400; runs_table.js has htmx swap it in rather than drop it).
        result, error = RunPage([], 0, query), str(exc)
    else:
        error = ""
    pages = max(1, -(-result.total // size))
    context: dict[str, Any] = {
        "result": result,
        "page": page,
        "pages": pages,
        "size": size,
        "filters": {
            "experiment": experiment,
            "status": status,
            "filter": filter,
            "metrics": ",".join(chosen_metrics),
            "params": params,
            "sort": sort,
            "desc": desc,
            "tree": tree,
            "size": size,
        },
        "metric_keys": metric_keys,
        "param_keys": param_keys,
        "experiments": queries.experiments(),
        "error": error,
    }
    # htmx asks for the table alone when a filter or the page changes.
    template = "runs_table.html" if partial else "runs.html"
    return render(request, template, 400 if error else 200, **context)


def _metric_charts(
    histories: dict[str, dict[str, list[tuple[int, float]]]], names: dict[str, str]
) -> list[str]:
    keys = sorted({k for per_run in histories.values() for k in per_run})
    charts = []
    for key in keys:
        series = [
            Series(names[run_id], [(float(s), v) for s, v in per_run[key]])
            for run_id, per_run in histories.items()
            if key in per_run
        ]
        charts.append(line_chart(series, title=key))
    return charts


def _artifact_views(client: Any, run_id: str) -> list[ArtifactView]:
    """Each artifact of the run with its preview; the bytes read only where shown."""
    views = []
    for artifact in client.runs.list_artifacts(run_id):
        data = None
        if artifact.size <= PREVIEW_BYTES and not artifact.path.lower().endswith(IMAGE_SUFFIXES):
            _, data = read_artifact(client.runs, client.artifacts, run_id, artifact.path)
        views.append(preview_of(artifact, data))
    return views


def _by_prefix(request: Request, run_id: str) -> Response:
    """A redirect to the page of the run whose id starts with ``run_id`` (see run_ids)."""
    full = full_run_id(state(request).client.runs, run_id)
    path = request.url.path.replace(f"/runs/{run_id}", f"/runs/{full}", 1)
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(path + query, status_code=307)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str) -> Response:
    client = state(request).client
    try:
        run = client.runs.get_run(run_id)
    except RunNotFoundError:
        return _by_prefix(request, run_id)
    histories = client.run_queries.histories([run.id])
    charts = _metric_charts(histories, {run.id: run.name})
    children = client.runs.children(run.id)
    return render(
        request,
        "run.html",
        run=run,
        charts=charts,
        artifacts=_artifact_views(client, run.id),
        children=children,
    )


@router.get("/runs/{run_id}/artifacts/{path:path}")
def run_artifact(request: Request, run_id: str, path: str, download: bool = False) -> Response:
    """One artifact's bytes: only a path the run recorded (anything else is a 404)."""
    client = state(request).client
    if not client.runs.run_exists(run_id):
        return _by_prefix(request, run_id)
    artifact, data = read_artifact(client.runs, client.artifacts, run_id, path)
    name = PurePosixPath(artifact.path).name
    headers = {
        "X-Content-Type-Options": "nosniff",
        # Served bytes never run as a page of the UI, even an SVG opened on its own.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Content-Disposition": (
            f"{'attachment' if download else 'inline'}; filename*=UTF-8''{quote(name)}"
        ),
    }
    return Response(data, media_type=content_type(artifact.path), headers=headers)


@router.get("/compare")
def compare_page(request: Request, run: list[str] = Query(default=[])) -> Response:
    ids = list(dict.fromkeys(r for r in run if r))
    if len(ids) < 2:
        raise HTTPException(400, "Compare needs two or more runs: tick them in the runs table.")
    if len(ids) > MAX_COMPARED:
        raise HTTPException(400, f"Compare at most {MAX_COMPARED} runs at once, got {len(ids)}.")
    client = state(request).client
    full = [r if client.runs.run_exists(r) else full_run_id(client.runs, r) for r in ids]
    if full != ids:
        # Prefixes (the 12 characters lists show): the page under the runs' full ids.
        return RedirectResponse(f"/compare?{urlencode([('run', r) for r in full])}", 307)
    runs = [client.runs.get_run(r) for r in ids]
    names = {r.id: f"{r.name} ({r.id[:6]})" for r in runs}
    charts = _metric_charts(client.run_queries.histories(ids), names)
    param_keys = sorted({k for r in runs for k in r.params})
    params = [
        (key, [r.params.get(key) for r in runs], len({r.params.get(key) for r in runs}) > 1)
        for key in param_keys
    ]
    metric_keys = sorted({k for r in runs for k in r.metrics})
    metrics = [
        (key, [r.metrics.get(key) for r in runs], len({r.metrics.get(key) for r in runs}) > 1)
        for key in metric_keys
    ]
    return render(request, "compare.html", runs=runs, charts=charts, params=params, metrics=metrics)
