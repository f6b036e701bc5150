"""``shipyard optimize REF``: compile a version to ONNX, verify it, record the outcome.

Registered in the root app as ``app.command("optimize")(optimize_command)``.
A server loading the version afterwards answers with onnxruntime when the
graph was verified; ``shipyard models show`` says which runtime serves it and why.

    $ shipyard optimize iris:3
    iris:3: verified (skl2onnx 1.20.0): 500 rows: classes equal; max |probability diff| ...
"""

from __future__ import annotations

import typer

from shipyard.cli._common import JsonOption, console, get_client, print_json
from shipyard.registry.optimize import DEFAULT_ATOL, optimize_version


def optimize_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Version to compile: NAME, NAME@ALIAS or NAME:VERSION."),
    atol: float = typer.Option(
        DEFAULT_ATOL, min=0.0, help="Largest allowed |probability difference| (classes: exact)."
    ),
    strict: bool = typer.Option(
        False, help="Exit with status 1 unless the ONNX graph was verified."
    ),
    trusted_pickle: bool = typer.Option(
        False, help="Allow loading a pickled original (only if you trust its author)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Convert a version to ONNX and keep it only if it answers like the original."""
    client = get_client(ctx)
    outcome = optimize_version(client.registry, ref, atol=atol, trusted_pickle=trusted_pickle)
    if as_json:
        print_json(outcome)
    else:
        style = "green" if outcome.verified else "yellow"
        via = f" ({outcome.converter})" if outcome.converter else ""
        console.print(
            f"{outcome.ref}: [{style}]{outcome.status}[/]{via}: {outcome.detail}",
            highlight=False,
            soft_wrap=True,
        )
        if not outcome.verified:
            console.print("Servers keep answering with the original model.", highlight=False)
    if strict and not outcome.verified:
        raise typer.Exit(code=1)
