"""Models: the list, one model's versions and aliases, one version's whole story.

The version page is a list of sections (:data:`VERSION_SECTIONS`), each a
function of the version returning its template's context, so a stage adds
its part of the page by adding a section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    return {"run": run, **_optimization(ui, version)}


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
