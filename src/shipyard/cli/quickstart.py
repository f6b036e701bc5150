"""``shipyard quickstart``: the whole lifecycle, end to end, in a fresh folder per run."""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli._common import JsonOption, console, get_client, print_json, table


def quickstart_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Train, register, serve, monitor, detect drift, retrain through the loop, gate, canary.

    Each run works in a fresh folder, ``<home>/quickstart/run-<n>`` (SQLite and
    local files), so every run tells the whole story from the start.
    """
    from shipyard._client import Shipyard
    from shipyard.demo import fresh_run_settings, run_demo  # the ML stack: load on use

    client = Shipyard(fresh_run_settings(get_client(ctx).settings))
    try:
        result = run_demo(client, say=lambda text: None if as_json else console.print(text))
    finally:
        client.close()
    if as_json:
        print_json(result)
        return
    quick = result.quickstart
    rows = [
        [
            v.ref,
            v.flavor,
            ", ".join(f"{k}={x:.3f}" for k, x in sorted(v.metrics.items())),
            "production" if quick.production.get(v.model) == v.version else "",
        ]
        for v in quick.versions
    ]
    console.print(table("Registered first", ["version", "flavor", "metrics", "alias"], rows))
    rows = [[s.name, s.outcome, f"{s.seconds:.1f}"] for s in result.steps]
    console.print(table("What happened", ["step", "outcome", "seconds"], rows))
    for name, path in result.reports.items():
        console.print(f"{name} report: {path}", markup=False)
    settings = client.settings
    console.print(
        f"Metadata: {settings.database_url}\nArtifacts: {settings.artifact_url}", markup=False
    )
    console.print(
        f"This run lives in {escape(str(settings.home))}; explore it with\n"
        f"  [bold]export SHIPYARD_HOME={escape(str(settings.home))}[/]\n"
        "  [bold]shipyard models show iris[/], [bold]shipyard loop history iris[/], "
        "[bold]shipyard deploy status iris[/]",
        highlight=False,
    )
    # Last, so it is what a person sees when the demo ends: the story in a browser.
    console.print(
        "See the whole story (runs, versions, the canary, the rollback, the drift) in the "
        f"web UI:\n  [bold]SHIPYARD_HOME={escape(str(settings.home))} shipyard ui[/]   "
        "then open http://127.0.0.1:5050/",
        highlight=False,
        soft_wrap=True,
    )
