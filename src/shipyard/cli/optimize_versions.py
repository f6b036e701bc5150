"""Render ``shipyard optimize REF --quantize/--prune/--distill`` (a new, gated version).

Kept apart from :mod:`shipyard.cli.optimize` so that compiling alone does not import
the gates and the optimization stage.
"""

from __future__ import annotations

from typing import Any

import typer

from shipyard.cli._common import console, err_console, print_json
from shipyard.optimization import lineage
from shipyard.optimization.service import Distill, Method, Prune, Quantize, optimize_model
from shipyard.validation.fidelity import FidelitySpec, parse_max_drop
from shipyard.validation.service import read_data


def optimize_new_version(
    client: Any,
    ref: str,
    *,
    quantize: str | None,
    prune: bool,
    distill: str | None,
    holdout: str | None,
    target: str | None,
    max_drop: list[str],
    min_agreement: float,
    trusted_pickle: bool,
    as_json: bool,
) -> None:
    method: Method
    if quantize:
        method = Quantize(quantize)
        from shipyard.optimization.quantize import MODES

        if quantize not in MODES:
            raise typer.BadParameter(f"--quantize takes {' or '.join(MODES)}, not {quantize!r}")
    elif prune:
        method = Prune()
    else:
        assert distill is not None
        method = Distill(distill)
    if (holdout is None) != (target is None):
        raise typer.BadParameter("--holdout FILE and --target COLUMN go together")
    spec = FidelitySpec(parse_max_drop(max_drop), min_agreement)
    data = None if holdout is None else read_data(client.settings, holdout)
    result = optimize_model(
        client.registry,
        client.validation,
        ref,
        method,
        holdout=data,
        target=target,
        spec=spec,
        trusted_pickle=trusted_pickle,
    )
    features = client.registry.manifest(result.version).features
    if features:  # a breaking change to these views is refused while this version uses them
        client.feature_store.add_consumers(
            result.version.model, result.version.version, features["views"]
        )
    if as_json:
        print_json(
            {
                "version": result.version.ref,
                "source": result.source,
                "how": result.how,
                "detail": result.detail,
                "passed": result.passed,
                "gates": result.report.to_dict(),
                "before": result.before.__dict__,
                "after": result.after.__dict__,
            }
        )
    else:
        console.print(
            f"{result.version.ref}: registered, optimized from {result.source} by {result.how}",
            markup=False,
            highlight=False,
        )
        for line in lineage.describe_lineage(result.tags)[1:]:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        for check in result.report.checks:
            mark = "ok  " if check.passed else "FAIL"
            console.print(f"  [{mark}] {check.message}", markup=False, highlight=False)
    if holdout is None:
        # Agreement on the training sample can pass a model cut to the bone (a
        # 200-tree forest pruned to 1 tree): say what was not checked.
        err_console.print(
            f"Warning: no --holdout was given, so only agreement with {result.source} on its "
            "training sample was checked, not any metric; give --holdout FILE --target COLUMN "
            "to gate the metric on rows the model did not learn from.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if not result.passed:
        err_console.print(
            f"Error: {result.version.ref} failed its gates against {result.source}: it is kept "
            f"for inspection but refused production. {result.report.summary()}.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
