"""``shipyard optimize REF``: compile a version to ONNX, verify it, record the outcome;
with ``--quantize``, ``--prune`` or ``--distill``, make a new gated version from it.

Registered in the root app as ``app.command("optimize")(optimize_command)``.
A server loading the version afterwards answers with onnxruntime when the
graph was verified; ``shipyard models show`` says which runtime serves it and why.
The exit status says whether it worked: 0 verified, 1 not converted or not in
agreement with the original (the original keeps serving), as for any error.

    $ shipyard optimize iris:3
    iris:3: verified (skl2onnx 1.20.0): 500 rows: classes equal; max |probability diff| ...
    $ shipyard optimize iris:3 --quantize int8 --holdout holdout.csv --target species
    iris:4: optimized from iris:3 by int8 quantization ... gates against iris:3: PASSED

An optimized version exits 0 when it passes its gates against the source, 1 when it
fails them (it is kept, and refused production).
"""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli._common import JsonOption, console, err_console, get_client, print_json
from shipyard.registry.optimize import DEFAULT_ATOL, DEFAULT_RTOL, DISAGREES, optimize_version
from shipyard.validation.fidelity import DEFAULT_MIN_AGREEMENT


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
    quantize: str | None = typer.Option(
        None,
        "--quantize",
        metavar="int8|fp16",
        help="Make a new version: the ONNX graph with int8 weights (dynamic) or in float16.",
    ),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="Make a new version: the fewest trees (forests, boosting) or hidden neurons (MLPs) "
        "that keep the gates.",
    ),
    distill: str | None = typer.Option(
        None,
        "--distill",
        metavar="STUDENT",
        help="Make a new version: STUDENT (e.g. sklearn.tree:DecisionTreeClassifier?max_depth=6) "
        "trained on the model's probabilities.",
    ),
    holdout: str | None = typer.Option(
        None, "--holdout", help="Labelled rows to gate the new version on (CSV, Parquet, ...)."
    ),
    target: str | None = typer.Option(None, "--target", help="The label column of --holdout."),
    max_drop: list[str] = typer.Option(
        [],
        "--max-drop",
        help="METRIC:AMOUNT the new version may lose against its source. Repeatable; each "
        "adds a check to the default accuracy:0.01 (r2:0.01 for regressors), which only a "
        "--max-drop for that same metric replaces.",
    ),
    min_agreement: float = typer.Option(
        DEFAULT_MIN_AGREEMENT,
        "--min-agreement",
        min=0.0,
        max=1.0,
        help="Share of rows where the new version must predict the source's label.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Convert a version to ONNX and keep it only if it answers like the original.

    Exits 1 when the version could not be converted or its graph disagrees with the
    original model; servers then keep answering with the original. With --quantize,
    --prune or --distill it registers a new version optimized from REF instead, gated
    against REF (exit 1 when it fails: kept, but refused production).
    """
    client = get_client(ctx)
    chosen = [
        flag
        for flag, on in (("--quantize", quantize), ("--prune", prune), ("--distill", distill))
        if on
    ]
    if len(chosen) > 1:
        raise typer.BadParameter(
            f"{' and '.join(chosen)} were both given; choose one of --quantize, --prune, "
            "--distill per run"
        )
    if chosen:
        from shipyard.cli.optimize_versions import optimize_new_version

        optimize_new_version(
            client,
            ref,
            quantize=quantize,
            prune=prune,
            distill=distill,
            holdout=holdout,
            target=target,
            max_drop=max_drop,
            min_agreement=min_agreement,
            trusted_pickle=trusted_pickle,
            as_json=as_json,
        )
        return
    if holdout or target or max_drop:
        raise typer.BadParameter(
            "--holdout, --target and --max-drop gate a new version: add --quantize, --prune "
            "or --distill"
        )
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
