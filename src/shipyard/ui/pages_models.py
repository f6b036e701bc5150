"""Models: the list, one model's versions and aliases, one version's whole story.

The version page is a list of sections (:data:`VERSION_SECTIONS`), each a
function of the version returning its template's context, so a stage adds
its part of the page by adding a section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from shipyard.errors import NotFoundError, ShipyardError
from shipyard.store import records
from shipyard.ui.web import UiState, render, state

router = APIRouter()


@router.get("/models")
def models_page(request: Request, archived: bool = False) -> Response:
    client = state(request).client
    models = client.models.list_models(include_archived=archived)
    return render(request, "models.html", models=models, archived=archived)


@router.get("/models/{name}")
def model_page(request: Request, name: str) -> Response:
    client = state(request).client
    model = client.models.get_model(name)
    versions = list(reversed(client.models.list_versions(name)))
    deployments = client.deployments.list_deployments(name)
    return render(request, "model.html", model=model, versions=versions, deployments=deployments)


@dataclass(frozen=True)
class Section:
    """One part of the version page: its template and the context it needs."""

    title: str
    template: str
    context: Callable[[UiState, records.ModelVersion], dict[str, Any]]


def _package(ui: UiState, version: records.ModelVersion) -> dict[str, Any]:
    try:
        manifest = ui.client.registry.manifest(version)
    except ShipyardError as exc:
        return {"manifest": None, "manifest_error": str(exc)}
    return {"manifest": manifest, "manifest_error": None}


def _run(ui: UiState, version: records.ModelVersion) -> dict[str, Any]:
    run = None
    if version.run_id:
        try:
            run = ui.client.runs.get_run(version.run_id)
        except NotFoundError:
            run = None
    return {"run": run, **_lineage(ui, version), **_optimization(ui, version)}


#: Days of predictions listed in the lineage (newest first); the rest are summed.
LINEAGE_DAYS = 14


def _lineage(ui: UiState, version: records.ModelVersion) -> dict[str, Any]:
    """The chain `shipyard loop lineage` prints, from the same function, and the data
    snapshot it names (rows, bytes)."""
    from shipyard.data.refs import parse_data_ref
    from shipyard.loop.lineage import lineage

    try:
        chain = lineage(ui.client, version.ref)
    except ShipyardError as exc:
        return {"chain": None, "chain_error": str(exc)}
    snapshot = None
    if chain.snapshot:
        try:
            name, number = parse_data_ref(chain.snapshot)
            snapshot = ui.client.datasets.get_version(name, number)
        except ShipyardError:
            snapshot = None  # named but gone (pruned): the reference is still shown
    days = list(reversed(chain.windows))
    shown = days[:LINEAGE_DAYS]
    return {
        "chain": chain,
        "chain_error": None,
        "snapshot": snapshot,
        "windows": [(w, _day_link(version, w.day)) for w in shown],
        "older_windows": days[LINEAGE_DAYS:],
    }


def _day_link(version: records.ModelVersion, day: date) -> str:
    """The monitoring page of ``version`` over the UTC day ``day``."""
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    query = urlencode({"window": "24h", "version": version.version, "until": end.isoformat()})
    return f"/monitoring/{version.model}?{query}"


def _optimization(ui: UiState, version: records.ModelVersion) -> dict[str, Any]:
    """What this version was optimized from (how, at what cost) and what was optimized from it."""
    from shipyard.optimization.lineage import FROM, lineage_facts

    found = lineage_facts(version.tags)
    source_link = None
    if found is not None:
        model, _, number = found[0].rpartition(":")
        if model and number.isdigit():
            source_link = f"/models/{model}/versions/{number}"
    derived = [
        (v, lineage_facts(v.tags))
        for v in ui.client.models.list_versions(version.model)
        if v.tags.get(FROM) == version.ref
    ]
    return {"optimized": found, "optimized_source_link": source_link, "derived": derived}


def _validation(ui: UiState, version: records.ModelVersion) -> dict[str, Any]:
    from shipyard.validation.approvals import current_status

    store = ui.client.validation
    try:
        contract = store.get_contract(version.model, version.version)
    except NotFoundError:
        contract = None
    return {
        "contract": contract,
        "gates": store.gate_results(version.model, version.version),
        "approval": current_status(store, version.model, version.version),
        "decisions": store.decisions(version.model, version.version),
    }


def _serving(ui: UiState, version: records.ModelVersion) -> dict[str, Any]:
    from shipyard.registry.optimize import describe_optimization

    deployments = [
        d
        for d in ui.client.deployments.list_deployments(version.model)
        if version.version in d.versions()
    ]
    return {
        "runtime_lines": describe_optimization(ui.client.registry, version),
        "serving_deployments": deployments,
    }


def _reference(ui: UiState, version: records.ModelVersion) -> dict[str, Any]:
    references = ui.client.references
    if not references.has(version):
        return {"profile": None}
    try:
        return {"profile": references.load(version), "profile_error": None}
    except ShipyardError as exc:
        return {"profile": None, "profile_error": str(exc)}


#: The version page, top to bottom; append a Section to add to it.
VERSION_SECTIONS: list[Section] = [
    Section("Lineage", "sections/lineage.html", _run),
    Section("Signature and environment", "sections/package.html", _package),
    Section("Contract, gates and approvals", "sections/validation.html", _validation),
    Section("Serving", "sections/serving.html", _serving),
    Section("Drift reference profile", "sections/reference.html", _reference),
]


@router.get("/models/{name}/versions/{number}")
def version_page(request: Request, name: str, number: int) -> Response:
    ui = state(request)
    version = ui.client.models.get_version(name, number)
    model = ui.client.models.get_model(name)
    context: dict[str, Any] = {}
    for section in VERSION_SECTIONS:
        context.update(section.context(ui, version))
    return render(
        request,
        "version.html",
        version=version,
        model=model,
        sections=VERSION_SECTIONS,
        **context,
    )
