"""``shipyard optimize REF``: compile a version to ONNX, verify it, record the outcome.

Registered in the root app as ``app.command("optimize")(optimize_command)``.
A server loading the version afterwards answers with onnxruntime when the
graph was verified; ``shipyard models show`` says which runtime serves it and why.
The exit status says whether it worked: 0 verified, 1 not converted or not in
agreement with the original (the original keeps serving), as for any error.

    $ shipyard optimize iris:3
    iris:3: verified (skl2onnx 1.20.0): 500 rows: classes equal; max |probability diff| ...
"""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli._common import JsonOption, console, err_console, get_client, print_json
from shipyard.registry.optimize import DEFAULT_ATOL, DEFAULT_RTOL, DISAGREES, optimize_version


def optimize_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Version to compile: NAME, NAME@ALIAS or NAME:VERSION."),
    atol: float = typer.Option(
        DEFAULT_ATOL, min=0.0, help="Largest allowed |probability difference| (classes: exact)."
    ),
    rtol: float = typer.Option(
        DEFAULT_RTOL,
        min=0.0,
        help="Regressors: allowed |prediction difference| relative to the largest "
        "|prediction| on the sample (added to --atol).",
    ),
    strict: bool = typer.Option(
        True,
        hidden=True,
        help="Kept for old scripts: a graph that is not verified always exits 1 now.",
    ),
    trusted_pickle: bool = typer.Option(
        False, help="Allow loading a pickled original (only if you trust its author)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Convert a version to ONNX and keep it only if it answers like the original.

    Exits 1 when the version could not be converted or its graph disagrees with the
    original model; servers then keep answering with the original.
    """
    client = get_client(ctx)
    outcome = optimize_version(
        client.registry, ref, atol=atol, rtol=rtol, trusted_pickle=trusted_pickle
    )
    if as_json:
        print_json(outcome)
    elif outcome.verified:
        console.print(
            f"{outcome.ref}: [green]verified[/] ({outcome.converter}): {escape(outcome.detail)}. "
            "Servers loading it now answer with onnxruntime.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        runtime = client.registry.resolve(outcome.ref).flavor
        if outcome.status == DISAGREES:
            what = (
                f"the ONNX graph ({outcome.converter}) does not answer like the original: "
                f"{outcome.detail}. It is kept for inspection but never served; a larger "
                "--atol (--rtol for regression values) accepts rounding differences"
            )
        else:
            detail = outcome.detail.removeprefix("conversion failed: ")
            what = f"ONNX conversion failed: {detail}"
        err_console.print(
            f"[bold red]Error:[/] {outcome.ref}: {escape(what)}. Servers keep answering with the "
            f"original model ({runtime}); `shipyard models show {outcome.ref}` shows why.",
            highlight=False,
            soft_wrap=True,
        )
    if not outcome.verified:
        raise typer.Exit(code=1)
