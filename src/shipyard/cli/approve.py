"""``shipyard approve REF`` and ``shipyard reject REF``: human sign-off before production.

Each decision records who (the configured user) and when, with a comment, in
the approvals table and the audit log. ``shipyard validate policy
--required-approvals N [--model NAME]`` sets how many approvals production needs.
"""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli._common import JsonOption, console, get_client, print_json
from shipyard.validation.approvals import ApprovalStatus, approve, reject


def approve_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to approve (iris:4)."),
    comment: str | None = typer.Option(None, "--comment", "-m", help="What you checked."),
    as_json: bool = JsonOption,
) -> None:
    """Approve a model version for production."""
    client = get_client(ctx)
    version = client.registry.resolve(ref)
    status = approve(
        client.validation,
        version.model,
        version.version,
        actor=client.settings.actor,
        comment=comment,
    )
    _render(version.ref, "approved", client.settings.actor, status, as_json)


def reject_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to reject (iris:4)."),
    comment: str = typer.Option(..., "--comment", "-m", help="Why it must not ship."),
    as_json: bool = JsonOption,
) -> None:
    """Reject a model version: it cannot take production until approved again (or forced)."""
    client = get_client(ctx)
    version = client.registry.resolve(ref)
    status = reject(
        client.validation,
        version.model,
        version.version,
        actor=client.settings.actor,
        comment=comment,
    )
    _render(version.ref, "rejected", client.settings.actor, status, as_json)


def _render(ref: str, what: str, actor: str, status: ApprovalStatus, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "version": ref,
                "decision": what,
                "actor": actor,
                "required": status.required,
                "approvers": list(status.approvers),
                "rejected_by": list(status.rejected_by),
                "ready_for_production": status.satisfied,
            }
        )
        return
    ready = "[green]ready for production[/]" if status.satisfied else "[yellow]not yet[/]"
    console.print(
        f"{escape(ref)} {what} by {escape(actor)}: {escape(status.describe())}; {ready}",
        highlight=False,
    )
