"""``shipyard quickstart``: the whole lifecycle, end to end, in the current folder."""

from __future__ import annotations

import typer

from shipyard.cli._common import JsonOption, console, get_client, print_json, table


def quickstart_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Train, register, serve, monitor, detect drift, retrain through the loop, gate, canary."""
    from shipyard.demo import run_demo  # the ML stack and the server: load on use

    client = get_client(ctx)
    result = run_demo(client, say=lambda text: None if as_json else console.print(text))
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
        console.print(f"{name} report: {path}")
    settings = client.settings
    console.print(f"Metadata: {settings.database_url}\nArtifacts: {settings.artifact_url}")
    console.print(
        "Next: [bold]shipyard models show iris[/], [bold]shipyard loop history iris[/], "
        "[bold]shipyard serve iris[/]"
    )
