"""``shipyard runs ...``: list (as a tree), show, artifacts, search, compare, import-mlflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from shipyard.cli._common import (
    JsonOption,
    command_group,
    console,
    get_client,
    print_json,
    table,
    to_jsonable,
    when,
)

if TYPE_CHECKING:
    from shipyard.store import records

app = command_group(
    "Experiment runs: params, metrics, datasets, artifacts; search, compare, import; "
    "reproduce a run."
)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this one."),
    limit: int = typer.Option(50, "--limit", min=1, help="Newest runs first, at most this many."),
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first; nested runs appear under their parent."""
    runs = get_client(ctx).runs.list_runs(experiment, limit=limit)
    if as_json:
        print_json(runs)
        return
    rows = [
        [
            r.id[:12],
            r.experiment,
            f"{prefix}{r.name}",
            r.status,
            ", ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())[:6])
            + (", …" if len(r.metrics) > 6 else ""),
            when(r.start_time),
        ]
        for prefix, r in run_tree(runs)
    ]
    columns = ["run", "experiment", "name", "status", "metrics", "started"]
    console.print(table("Runs", columns, rows))


def run_tree(runs: list[records.Run]) -> list[tuple[str, records.Run]]:
    """``runs`` in tree order (children after their parent, oldest child first), with the
    prefix that draws the tree: a run whose parent is not listed is a root."""
    listed = {r.id for r in runs}
    children: dict[str | None, list[records.Run]] = {}
    for r in runs:
        parent = r.parent_id if r.parent_id in listed else None
        children.setdefault(parent, []).append(r)
    out: list[tuple[str, records.Run]] = []

    def walk(parent: str | None, indent: str) -> None:
        kids = children.get(parent, [])
        if parent is not None:
            kids = sorted(kids, key=lambda r: r.start_time)
        for i, run in enumerate(kids):
            last = i == len(kids) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            out.append((indent + branch, run))
            walk(run.id, indent + ("" if parent is None else ("   " if last else "│  ")))

    walk(None, "")
    return out


@app.command("show")
def show_run(ctx: typer.Context, run_id: str, as_json: bool = JsonOption) -> None:
    """Show one run: params, latest metrics, tags, datasets and the model versions it registered."""
    client = get_client(ctx)
    runs = client.runs
    run = runs.get_run(runs.expand_id(run_id))
    artifacts = runs.list_artifacts(run.id)
    children = runs.children(run.id)
    registered = client.models.versions_from_run(run.id)
    if as_json:
        print_json(
            {
                **to_jsonable(run),
                "artifacts": to_jsonable(artifacts),
                "children": [c.id for c in children],
                "model_versions": registered,
            }
        )
        return
    console.print(
        f"[bold]{escape(run.name)}[/] ({run.id}) in {escape(run.experiment)}: {run.status}"
    )
    if run.parent_id:
        console.print(f"nested in run {run.parent_id}", markup=False)
    console.print(
        f"started {when(run.start_time)}, ended {when(run.end_time)}, by {run.created_by}",
        markup=False,
    )
    if run.params:
        console.print(table("Params", ["param", "value"], [[k, v] for k, v in run.params.items()]))
    if run.metrics:
        rows = [[k, f"{v:.6g}"] for k, v in sorted(run.metrics.items())]
        console.print(table("Metrics (latest)", ["metric", "value"], rows))
    if run.tags:
        console.print(table("Tags", ["tag", "value"], [[k, v] for k, v in run.tags.items()]))
    for context, fp in run.datasets.items():
        source = f" from {fp['source']}" if fp.get("source") else ""
        line = (
            f"dataset [{context}]{source}: {fp.get('n_rows')} rows, "
            f"{len(fp.get('schema', {}))} columns, hash {str(fp.get('content_hash'))[:16]}…"
        )
        console.print(escape(line))  # "[training]" is text, not Rich markup
    if registered:
        console.print(f"registered as: {', '.join(registered)}", markup=False)
    if artifacts:
        console.print(_artifact_table(artifacts))
    if children:
        rows = [[c.id[:12], c.name, c.status] for c in children]
        console.print(table("Nested runs", ["run", "name", "status"], rows))


@app.command("artifacts")
def artifacts_command(
    ctx: typer.Context,
    run_id: str,
    download: Path | None = typer.Option(
        None, "--download", help="Write every artifact under this folder (checksums verified)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """List the files a run kept (plots, tables, notes, models); --download copies them out."""
    from shipyard.tracking.artifacts import download as download_all

    client = get_client(ctx)
    runs = client.runs
    run = runs.get_run(runs.expand_id(run_id))
    if download is None:
        artifacts = runs.list_artifacts(run.id)
        if as_json:
            print_json(artifacts)
        elif not artifacts:
            console.print(f"Run {run.id} has no artifacts.", markup=False)
        else:
            console.print(_artifact_table(artifacts))
        return
    written = download_all(runs, client.artifacts, run.id, download)
    if as_json:
        print_json([{"path": a.path, "digest": a.digest, "file": str(f)} for a, f in written])
        return
    console.print(f"Wrote {len(written)} artifact(s) of run {run.id} to {download}", markup=False)


def _artifact_table(artifacts: list[records.RunArtifact]) -> object:
    rows = [[a.path, a.kind, _size(a.size), a.digest[:16] + "…"] for a in artifacts]
    return table("Artifacts", ["path", "kind", "size", "sha256"], rows, right=("size",))


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


@app.command("search")
def search_command(
    ctx: typer.Context,
    filter: str | None = typer.Argument(
        None, help="e.g. \"metrics.accuracy > 0.9 and params.C = '1.0' and tags.team = 'risk'\""
    ),
    experiment: list[str] | None = typer.Option(
        None, "--experiment", "-e", help="Only these experiments (repeat the option)."
    ),
    order_by: list[str] | None = typer.Option(
        None, "--order-by", "-o", help="e.g. 'metrics.accuracy DESC' (repeat for ties)."
    ),
    max_results: int = typer.Option(100, "--max-results", "-n", min=1, help="At most this many."),
    as_json: bool = JsonOption,
) -> None:
    """Find runs with MLflow's filter syntax: metrics., params., tags., attributes.; and; LIKE."""
    runs = get_client(ctx).run_search.search(experiment or None, filter, order_by, max_results)
    if as_json:
        from shipyard.tracking.search import runs_records

        print_json(runs_records(runs))  # the columns of shipyard.search_runs' DataFrame
        return
    if not runs:
        console.print("No run matches.", markup=False)
        return
    metric_keys = sorted({k for r in runs for k in r.metrics})[:6]
    param_keys = sorted({k for r in runs for k in r.params})[:6]
    columns = ["run", "experiment", "name", "status"]
    columns += [f"metrics.{k}" for k in metric_keys] + [f"params.{k}" for k in param_keys]
    rows = [
        [r.id[:12], r.experiment, r.name, r.status]
        + [f"{r.metrics[k]:.6g}" if k in r.metrics else "-" for k in metric_keys]
        + [r.params.get(k, "-") for k in param_keys]
        for r in runs
    ]
    console.print(table(f"{len(runs)} run(s)", columns, rows))


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids (or 12-char prefixes)."),
    as_json: bool = JsonOption,
) -> None:
    """Runs side by side: params (differences marked *), final metrics, stepped metrics'
    last, best and number of steps."""
    from rich.text import Text

    from shipyard.tracking.compare import compare_runs

    comparison = compare_runs(get_client(ctx).runs, run_ids)
    if as_json:
        print_json(comparison)
        return
    runs = comparison.runs
    heads = [f"{r.name} ({r.id[:8]})" for r in runs]
    rows: list[list[object]] = []
    for p in comparison.params:
        mark = Text("*", style="bold yellow") if p.differs else ""
        rows.append([mark, p.key, *[p.values[r.id] for r in runs]])
    if rows:
        console.print(table("Params (* differs)", ["", "param", *heads], rows))
    finals = [m for m in comparison.metrics if not m.stepped]
    stepped = [m for m in comparison.metrics if m.stepped]
    if finals:
        rows = [
            [
                Text("*", style="bold yellow") if m.differs else "",
                m.key,
                *[_number(m.values[r.id], "last") for r in runs],
            ]
            for m in finals
        ]
        console.print(table("Metrics (* differs)", ["", "metric", *heads], rows))
    if stepped:
        rows = []
        for m in stepped:
            cells = []
            for r in runs:
                v = m.values[r.id]
                cells.append(
                    "-"
                    if v is None
                    else f"last {v.last:.6g} · best {v.best:.6g} ({m.goal}) · {v.steps} steps"
                )
            rows.append([Text("*", style="bold yellow") if m.differs else "", m.key, *cells])
        console.print(table("Stepped metrics", ["", "metric", *heads], rows))


def _number(value: object, attr: str) -> str:
    return "-" if value is None else f"{getattr(value, attr):.6g}"


@app.command("import-mlflow")
def import_mlflow_command(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., help="MLflow file store folder (mlruns) or SQLite tracking DB (path or sqlite:///...)."
    ),
    experiment: str | None = typer.Option(
        None, "--experiment", "-e", help="Only this MLflow experiment (by its MLflow name)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Copy experiments, runs, params, metrics (steps, times), tags and artifacts from MLflow."""
    from shipyard.tracking.mlflow_import import import_mlflow

    client = get_client(ctx)
    report = import_mlflow(
        client.runs, client.artifacts, source, experiment=experiment, actor=client.settings.actor
    )
    if as_json:
        print_json(report)
        return
    for name, target in report.experiments.items():
        console.print(f"experiment {name} -> {target}", markup=False)
    console.print(
        f"Imported {report.runs} run(s): {report.params} params, {report.tags} tags, "
        f"{report.metric_points} metric points, {report.artifacts} artifacts. "
        f"Skipped {report.skipped_existing} already imported, {report.skipped_deleted} deleted.",
        markup=False,
    )
    for warning in report.warnings[:20]:
        console.print(f"warning: {warning}", markup=False)
    if len(report.warnings) > 20:
        console.print(f"... and {len(report.warnings) - 20} more warnings (--json lists all).")


@app.command("reproduce")
def reproduce_command(
    ctx: typer.Context,
    run_id: str,
    check: bool = typer.Option(
        False,
        "--check",
        help="Compare with the original: code, packages, data, holdout predictions, metrics; "
        "exit 1 if they differ.",
    ),
    tolerance: float = typer.Option(
        0.01,
        "--tolerance",
        min=0.0,
        help="Largest absolute metric difference accepted when predictions are not identical.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Re-run RUN_ID's pipeline on the same data snapshots, params and seed; register the
    result as a candidate (no alias moves)."""
    from shipyard.loop.reproduce import reproduce

    client = get_client(ctx)
    result = reproduce(client, client.runs.expand_id(run_id), check=check, tolerance=tolerance)
    if as_json:
        print_json({**result.__dict__, "ok": result.ok})
    else:
        console.print(
            f"reproduced run {result.run_id} as run {result.new_run_id}: candidate "
            f"{result.candidate} (no alias set)",
            markup=False,
        )
        if check:
            if result.predictions_identical is not None:
                same = "identical" if result.predictions_identical else "different"
                console.print(
                    f"holdout predictions of {result.original} and {result.candidate}: {same}",
                    markup=False,
                )
            for key, (before, after) in result.metrics.items():
                console.print(f"metric {key}: {before} -> {after}", markup=False)
            if result.ok:
                console.print("reproduced: same code, packages, data and results", markup=False)
            else:
                console.print("NOT reproduced:", markup=False)
                for reason in result.reasons:
                    console.print(f"  - {reason}", markup=False)
    if check and not result.ok:
        raise typer.Exit(1)
