"""``shipyard quickstart``: train, register and use two models in the current folder."""

from __future__ import annotations

import typer

from shipyard.cli._common import JsonOption, console, get_client, print_json, table


def quickstart_command(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Train the course's iris classifier and a regression model, register and use them."""
    from shipyard.quickstart import run_quickstart  # scikit-learn and LightGBM: load on use

    client = get_client(ctx)
    with console.status("Training and registering models..."):
        result = run_quickstart(client)
    if as_json:
        print_json(result)
        return
    rows = [
        [
            v.ref,
            v.flavor,
            ", ".join(f"{k}={x:.3f}" for k, x in sorted(v.metrics.items())),
            "production" if result.production.get(v.model) == v.version else "",
        ]
        for v in result.versions
    ]
    console.print(table("Registered", ["version", "flavor", "metrics", "alias"], rows))
    rows = [
        [p["model"], p["input"], p["prediction"], f"{p['probability']:.3f}"]
        for p in result.predictions
    ]
    console.print(table("Predictions via load_model", ["model", "input", "prediction", "p"], rows))
    settings = client.settings
    console.print(f"Metadata: {settings.database_url}\nArtifacts: {settings.artifact_url}")
    console.print("Next: [bold]shipyard models show iris[/]")
