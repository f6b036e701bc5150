"""Applying definitions: validate against the sources, version what changed, guard consumers.

``apply`` reads each view's source schema (DuckDB ``DESCRIBE``), so a view
naming a column its source lacks, or typing it differently, is refused
before anything is stored. A view's stored spec carries its resolved join
keys and source, so a new entity key or source path makes a new view version
too. A breaking change (a feature removed or retyped, other join keys) to a
view a registered model version was trained on is refused unless forced with
a written reason, which the audit log keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import ConflictError, InvalidInputError, NotFoundError
from shipyard.features.definitions import (
    Definitions,
    Entity,
    FeatureView,
    OnDemandFeatureView,
    Source,
)
from shipyard.features.ondemand import load_function
from shipyard.features.sources import check_view_schema, connect, register_source, source_schema
from shipyard.store.feature_store import DefinitionVersion, FeatureStore, SpecChange

__all__ = [
    "AppliedView",
    "ApplyResult",
    "Catalog",
    "Change",
    "apply_definitions",
    "current_definitions",
    "view_versions",
]


@dataclass(frozen=True)
class Change:
    """One definition ``apply`` found new or changed."""

    kind: str
    name: str
    old_version: int | None
    new_version: int | None  # None on a dry run
    breaking: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApplyResult:
    changes: list[Change]
    unchanged: list[str]


def _view_spec(defs: Definitions, view: FeatureView) -> dict[str, Any]:
    spec = view.spec()
    spec["resolved"] = {
        "join_keys": defs.join_keys(view),
        "source": defs.source(view.source).spec(),
    }
    return spec


def _digest(spec: dict[str, Any]) -> str:
    import hashlib
    import json

    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _breaking(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a model trained on ``old`` would no longer find in ``new``."""
    problems = []
    old_types = {f["name"]: f["dtype"] for f in old.get("features", [])}
    new_types = {f["name"]: f["dtype"] for f in new.get("features", [])}
    for name, dtype in old_types.items():
        if name not in new_types:
            problems.append(f"feature {name!r} removed")
        elif new_types[name] != dtype:
            problems.append(f"feature {name!r} retyped {dtype} -> {new_types[name]}")
    old_keys = old.get("resolved", {}).get("join_keys")
    new_keys = new.get("resolved", {}).get("join_keys")
    if old_keys != new_keys:
        problems.append(f"join keys {old_keys} -> {new_keys}")
    return problems


def apply_definitions(
    store: FeatureStore,
    defs: Definitions,
    *,
    actor: str,
    force: bool = False,
    reason: str | None = None,
    dry_run: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> ApplyResult:
    """Validate ``defs`` against their sources and store a new version of each changed one."""
    if force and not (reason and reason.strip()):
        raise InvalidInputError("--force needs --reason: say why the breaking change is safe.")
    con = connect()
    try:
        for i, view in enumerate(defs.feature_views):
            alias = f"src{i}"
            register_source(
                con, defs.source(view.source), alias=alias, storage_options=storage_options
            )
            check_view_schema(defs, view, source_schema(con, alias))
    finally:
        con.close()
    for odfv in defs.on_demand_feature_views:
        # Refused now, not when the first training set or request needs the function.
        load_function(odfv)
    known = {(d.kind, d.name): d for d in store.latest()}
    wanted: list[tuple[str, str, dict[str, Any]]] = [
        *(("entity", e.name, e.spec()) for e in defs.entities),
        *(("source", s.name, s.spec()) for s in defs.sources),
        *(("view", v.name, _view_spec(defs, v)) for v in defs.feature_views),
        *(("on_demand", o.name, o.spec()) for o in defs.on_demand_feature_views),
    ]
    pending: list[tuple[SpecChange, Change]] = []
    unchanged = []
    refused = []
    for kind, name, spec in wanted:
        digest = _digest(spec)
        old = known.get((kind, name))
        if old is not None and old.digest == digest:
            unchanged.append(f"{kind} {name}")
            continue
        breaking = _breaking(old.spec, spec) if (old is not None and kind == "view") else []
        consumers = store.consumers(name) if breaking else []
        if consumers and not force:
            used_by = ", ".join(f"{c.model}:{c.model_version}" for c in consumers)
            refused.append(f"view {name!r} ({'; '.join(breaking)}) is used by {used_by}")
        details: dict[str, Any] = {"digest": digest}
        if breaking:
            details["breaking"] = breaking
            details["consumers"] = [f"{c.model}:{c.model_version}" for c in consumers]
        change = SpecChange(kind, name, spec, digest, reason=reason, details=details)
        pending.append((change, Change(kind, name, old.version if old else None, None, breaking)))
    if refused:
        raise ConflictError(
            "Breaking change refused: " + "; ".join(refused) + ". Train on a new view name, "
            "or pass --force --reason '...' if those models will be retrained."
        )
    if dry_run or not pending:
        return ApplyResult([c for _, c in pending], unchanged)
    written = store.apply([c for c, _ in pending], actor=actor)
    changes = [
        Change(c.kind, c.name, c.old_version, w.version, c.breaking)
        for (_, c), w in zip(pending, written, strict=True)
    ]
    return ApplyResult(changes, unchanged)


@dataclass(frozen=True)
class AppliedView:
    """A feature view as applied: its definition, version, join keys and source."""

    view: FeatureView
    version: int
    join_keys: list[str]
    source: Source


@dataclass(frozen=True)
class Catalog:
    """Everything applied so far, at the newest versions."""

    entities: list[Entity]
    sources: list[Source]
    views: dict[str, AppliedView]
    on_demand: dict[str, tuple[OnDemandFeatureView, int]]

    def view(self, name: str) -> AppliedView:
        found = self.views.get(name)
        if found is None:
            known = ", ".join(sorted(self.views)) or "none yet"
            raise NotFoundError(
                f"No feature view named {name!r}. Known views: {known} "
                "(`shipyard features apply FILE` defines them)."
            )
        return found

    def versions(self) -> dict[str, int]:
        return {
            **{n: v.version for n, v in self.views.items()},
            **{n: version for n, (_, version) in self.on_demand.items()},
        }


def current_definitions(store: FeatureStore) -> Catalog:
    """Everything applied so far, at the newest versions."""
    entities, sources = [], []
    views: dict[str, AppliedView] = {}
    on_demand: dict[str, tuple[OnDemandFeatureView, int]] = {}
    for d in store.latest():
        spec = {k: v for k, v in d.spec.items() if k != "resolved"}
        if d.kind == "entity":
            entities.append(Entity.model_validate(spec))
        elif d.kind == "source":
            sources.append(Source.model_validate(spec))
        elif d.kind == "view":
            resolved = d.spec["resolved"]
            views[d.name] = AppliedView(
                FeatureView.model_validate(spec),
                d.version,
                list(resolved["join_keys"]),
                Source.model_validate(resolved["source"]),
            )
        else:
            on_demand[d.name] = (OnDemandFeatureView.model_validate(spec), d.version)
    return Catalog(entities, sources, views, on_demand)


def view_versions(store: FeatureStore, name: str) -> list[DefinitionVersion]:
    """Every version of a feature view (or on-demand view), oldest first."""
    found = store.versions("view", name) or store.versions("on_demand", name)
    if not found:
        known = ", ".join(d.name for d in store.latest() if d.kind in ("view", "on_demand"))
        raise NotFoundError(
            f"No feature view named {name!r}. Known views: {known or 'none yet'} "
            "(`shipyard features apply FILE` defines them)."
        )
    return found
