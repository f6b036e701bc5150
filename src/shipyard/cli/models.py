"""``shipyard models ...``: list, show, versions, alias, archive, import-mlflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shipyard.cli._common import (
    JsonOption,
    command_group,
    console,
    get_client,
    print_json,
    table,
    when,
)
from shipyard.errors import NotFoundError

app = command_group("Registered models, their versions and aliases.")


@app.command("list")
def list_models(
    ctx: typer.Context,
    archived: bool = typer.Option(False, "--archived", help="Include archived models."),
    as_json: bool = JsonOption,
) -> None:
    """List registered models."""
    models = get_client(ctx).models.list_models(include_archived=archived)
    if as_json:
        print_json(models)
        return
    rows = [
        [
            m.name,
            m.latest_version,
            ", ".join(f"{a}->{v}" for a, v in m.aliases.items()),
            when(m.updated_at),
            "archived" if m.archived else (m.description or ""),
        ]
        for m in models
    ]
    console.print(table("Models", ["name", "latest", "aliases", "updated", "description"], rows))


@app.command("versions")
def list_versions(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """List the versions of one model."""
    versions = get_client(ctx).models.list_versions(name)
    if as_json:
        print_json(versions)
        return
    rows = [
        [
            v.version,
            v.status,
            ", ".join(v.aliases),
            v.flavor,
            ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items())),
            v.run_id[:8] if v.run_id else None,
            when(v.created_at),
        ]
        for v in versions
    ]
    columns = ["version", "status", "aliases", "flavor", "metrics", "run", "created"]
    console.print(table(f"Versions of {name}", columns, rows))


def _print_features(features: dict[str, Any]) -> None:
    """What a feature-backed version fetches by key, and what a request must carry."""
    views = ", ".join(f"{v} v{n}" for v, n in sorted(features.get("views", {}).items()))
    request = [*features.get("join_keys", []), *features.get("request_fields", [])]
    console.print(
        f"features: {', '.join(features.get('refs', []))} (views {views}); "
        f"a request carries {', '.join(request)}",
        markup=False,
        highlight=False,
    )


@app.command("show")
def show(ctx: typer.Context, ref: str, as_json: bool = JsonOption) -> None:
    """Show one version (REF: iris, iris@staging, iris:3) with its manifest."""
    # The registry and validation pull in pandas; `models list` should not pay for them.
    from shipyard.optimization.lineage import describe_lineage
    from shipyard.registry.optimize import describe_optimization
    from shipyard.validation.service import describe_validation

    client = get_client(ctx)
    registry = client.registry
    version = registry.resolve(ref)
    manifest = registry.manifest(version)
    model = registry.models.get_model(version.model)
    deployments = client.deployments
    where = deployments.describe_for_model(version.model)
    if as_json:
        validation = describe_validation(client.validation, version)
        print_json(
            {
                "model": model,
                "version": version,
                "manifest": manifest,
                "validation": validation,
                "deployments": where,
            }
        )
        return
    console.print(
        f"[bold]{version.ref}[/]  ({version.status})  aliases: {', '.join(version.aliases) or '-'}"
    )
    console.print(
        f"flavor: {manifest.flavor}   created: {when(version.created_at)} by {version.created_by}",
        markup=False,
    )
    description = manifest.description or version.description
    if description:
        console.print(f"description: {description}", markup=False, highlight=False)
    if manifest.trusted_pickle:
        console.print("[yellow]stored as pickle: loads only with an explicit trust flag[/]")
    if version.run_id:
        console.print(f"run: {version.run_id}")
    if version.data_fingerprint:
        fp = version.data_fingerprint
        console.print(
            f"training data: {fp.get('n_rows')} rows, hash {str(fp.get('content_hash'))[:16]}…"
            + (f", from {fp['source']}" if fp.get("source") else ""),
            markup=False,
        )
    if manifest.features:
        _print_features(manifest.features)
    signature = manifest.signature
    rows = [
        [
            col["name"],
            f"{col['dtype']} (category)" if col.get("categorical") else col["dtype"],
            "yes" if col.get("nullable") else "no",
            _range(col),
        ]
        for col in signature.get("inputs", [])
    ]
    console.print(table("Inputs", ["column", "type", "nullable", "range / categories"], rows))
    unused = [col["name"] for col in signature.get("inputs", []) if col.get("unused")]
    if unused:
        console.print(
            f"unused by the model: {', '.join(unused)} (its ColumnTransformer drops "
            f"{'them' if len(unused) > 1 else 'it'}); rows may leave "
            f"{'them' if len(unused) > 1 else 'it'} out or missing",
            markup=False,
        )
    output = signature.get("output", {})
    classes = output.get("classes")
    console.print(
        f"output: {output.get('task', '?')} ({output.get('dtype', '?')})"
        + (f", classes {list(classes)}" if classes else ""),
        markup=False,
    )
    if manifest.metrics:
        metrics = [[k, f"{v:.6g}"] for k, v in sorted(manifest.metrics.items())]
        console.print(table("Metrics", ["metric", "value"], metrics))
    run = _run_of(client.runs, version.run_id)
    # The version's own params, else those of the run that made it (and its tags).
    params = manifest.params or (run.params if run is not None else {})
    if params:
        rows = [[k, v] for k, v in sorted(params.items())]
        console.print(table("Params", ["param", "value"], rows))
    if run is not None and run.tags:
        tags = [[k, v] for k, v in sorted(run.tags.items())]
        console.print(table(f"Tags of run {run.id[:12]}", ["tag", "value"], tags))
    env = manifest.environment
    packages = ", ".join(f"{k}=={v}" for k, v in sorted(env.get("packages", {}).items()))
    console.print(f"environment: Python {env.get('python')}; {packages}", markup=False)
    console.print(f"files: {len(manifest.files)}, each checked against its SHA-256 on load")
    for line in describe_validation(client.validation, version):  # holds reviewers' comments
        console.print(line, markup=False, highlight=False)
    for line in describe_optimization(registry, version):  # ONNX runtime or why not
        console.print(line, markup=False, highlight=False)
    for line in describe_lineage(version.tags):  # quantized / pruned / distilled from what
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    aliases = ", ".join(f"{a} -> {model.name}:{v}" for a, v in sorted(model.aliases.items()))
    console.print(f"aliases of {model.name}: {aliases or 'none'}", markup=False, highlight=False)
    for line in where or [f"deployments: none serve {model.name}"]:
        console.print(line, markup=False, highlight=False)


def _run_of(runs: Any, run_id: str | None) -> Any:
    """The tracking run that made a version, or None (none recorded, or since deleted)."""
    if not run_id:
        return None
    try:
        return runs.get_run(run_id)
    except NotFoundError:
        return None


def _range(col: dict) -> str:
    if col.get("categories"):
        return ", ".join(str(c) for c in col["categories"])
    low, high = col.get("minimum"), col.get("maximum")
    if low is None and high is None:
        return "-"
    return f"{low} .. {high}"


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: str,
    alias_name: str = typer.Argument(..., metavar="ALIAS"),
    version: int | None = typer.Argument(None, help="Version to point the alias at."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
    reason: str | None = typer.Option(None, "--reason", help="Why; kept in the audit log."),
    force: bool = typer.Option(
        False, "--force", help="Override failed gates or missing approvals (needs --reason)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Point an alias (production, staging, champion, ...) at a version, or delete it."""
    registry = get_client(ctx).registry
    previous: int | None
    if delete:
        previous = registry.delete_alias(name, alias_name, reason=reason)
        result = {"model": name, "alias": alias_name, "from": previous, "to": None}
    else:
        if version is None:
            raise typer.BadParameter("give the VERSION to point the alias at, or --delete")
        previous = registry.set_alias(name, alias_name, version, reason=reason, force=force)
        result = {"model": name, "alias": alias_name, "from": previous, "to": version}
    if as_json:
        print_json(result)
        return
    before = "unset" if result["from"] is None else f"version {result['from']}"
    after = "removed" if result["to"] is None else f"version {result['to']}"
    console.print(f"{name}@{alias_name}: {before} -> {after}")

    client = get_client(ctx)
    deployments = client.deployments
    for d in deployments.list_deployments(name):
        gap = deployments.alias_gap(d) if d.follows == alias_name else None
        if gap is not None:
            console.print(f"note: {gap}.", markup=False, highlight=False)


@app.command("archive")
def archive(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="A model name, or NAME:VERSION for one version."),
    restore: bool = typer.Option(False, "--restore", help="Bring it back instead."),
    reason: str | None = typer.Option(None, "--reason", help="Why; kept in the audit log."),
) -> None:
    """Archive a model or a version (it keeps its data but can take no alias)."""
    get_client(ctx).registry.archive(ref, restore=restore, reason=reason)
    console.print(f"{ref}: {'restored' if restore else 'archived'}")


@app.command("import-mlflow")
def import_mlflow(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="An MLflow model folder (the one holding MLmodel)."),
    name: str = typer.Option(..., "--name", help="Register it under this model name."),
    alias_name: str | None = typer.Option(None, "--alias", help="Point this alias at it."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow a pickled model (runs code from the file)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Import an MLflow scikit-learn model folder as a new version."""
    client = get_client(ctx)
    version = client.registry.import_mlflow(path, name, trusted_pickle=trust_pickle)
    if alias_name:
        client.registry.set_alias(name, alias_name, version.version, reason="import-mlflow")
        version = client.models.get_version(name, version.version)
    if as_json:
        print_json(version)
        return
    console.print(f"Imported {path} as {version.ref}", markup=False)
    console.print(f"Next: shipyard models show {version.ref}")
