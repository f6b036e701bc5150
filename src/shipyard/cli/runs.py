"""``shipyard runs ...``: list and show tracking runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from shipyard.cli._common import HelpGroup, JsonOption, console, get_client, print_json, table, when

if TYPE_CHECKING:
    from shipyard.store.run_store import RunStore

app = typer.Typer(
    cls=HelpGroup,
    rich_markup_mode=None,  # plain help: option names are never cut short (see _common)
    help="Experiment runs: params, metrics, datasets; reproduce a run.",
    no_args_is_help=True,
)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this one."),
    limit: int = typer.Option(50, "--limit", min=1, help="Newest runs first, at most this many."),
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first."""
    runs = get_client(ctx).runs.list_runs(experiment, limit=limit)
    if as_json:
        print_json(runs)
        return
    rows = [
        [
            r.id[:12],
            r.experiment,
            r.name,
            r.status,
            ", ".join(f"{k}={v:.4g}" for k, v in sorted(r.metrics.items())),
            when(r.start_time),
        ]
        for r in runs
    ]
    columns = ["run", "experiment", "name", "status", "metrics", "started"]
    console.print(table("Runs", columns, rows))


@app.command("show")
def show_run(ctx: typer.Context, run_id: str, as_json: bool = JsonOption) -> None:
    """Show one run: params, latest metrics, tags and dataset fingerprints."""
    runs = get_client(ctx).runs
    run = runs.get_run(_expand(runs, run_id))
    if as_json:
        print_json(run)
        return
    console.print(
        f"[bold]{escape(run.name)}[/] ({run.id}) in {escape(run.experiment)}: {run.status}"
    )
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


def _expand(runs: RunStore, prefix: str) -> str:
    """Accept the 12-character prefix the list shows, like git's short hashes."""
    if len(prefix) >= 32:
        return prefix
    matches = [r.id for r in runs.list_runs(limit=10_000) if r.id.startswith(prefix)]
    return matches[0] if len(matches) == 1 else prefix


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
    result = reproduce(client, _expand(client.runs, run_id), check=check, tolerance=tolerance)
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
