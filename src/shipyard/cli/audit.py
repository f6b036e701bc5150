"""``shipyard audit``: who moved which alias, archived what, when and why."""

from __future__ import annotations

import typer

from shipyard.cli._common import JsonOption, console, get_client, print_json, table, when


def audit_command(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", "-m", help="Only entries for this model."),
    limit: int = typer.Option(50, "--limit", min=1, help="Newest entries first."),
    as_json: bool = JsonOption,
) -> None:
    """Show the audit log of changes to aliases, archives and deployments."""
    client = get_client(ctx)
    entries = client.audit.log(model=model, limit=limit)
    if model is not None and not entries:
        client.models.get_model(model)  # an unknown model is an error naming it, not an empty table
    if as_json:
        print_json(entries)
        return
    rows = [
        [when(e.at), e.actor, e.action, e.subject, e.from_value, e.to_value, e.reason]
        for e in entries
    ]
    columns = ["when", "who", "action", "subject", "from", "to", "why"]
    console.print(table("Audit log", columns, rows))
