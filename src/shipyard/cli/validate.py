"""``shipyard validate ...``: data against a contract, a candidate model against gates.

Exit codes CI can gate on: 0 passed (warnings about unusual values are shown
but pass unless ``--strict`` or the contract is strict), 1 failed (or an error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from shipyard.cli._common import (
    JsonOption,
    command_group,
    console,
    get_client,
    print_json,
    table,
    writing_to,
)
from shipyard.tables import storage_options
from shipyard.validation import service
from shipyard.validation.contract_export import EXPORT_FORMATS, export_contract
from shipyard.validation.contract_report import render_contract_report
from shipyard.validation.gates import DEFAULT_LATENCY_SAMPLES, DEFAULT_MIN_SLICE_ROWS, build_spec

app = command_group("Check data against a model's contract, and candidate models against gates.")


@app.command("data")
def data(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model version whose contract to check (iris:4)."),
    path: str = typer.Argument(
        ...,
        metavar="TABLE",
        help="CSV, Parquet or JSON lines file (also .gz, s3://) or a database URL#TABLE.",
    ),
    report: Path | None = typer.Option(None, "--report", help="Also write an HTML report here."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on warnings too (values outside the expected range, tails)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check TABLE against the data contract of REF; exit 1 on errors (and on warnings if strict).

    Errors break a hard expectation: a missing column, a wrong type, a missing
    value, a value past a bound (a negative one where the training data never
    had any), an unknown category. Warnings are unusual values: outside the
    expected range, or too many in the tails.
    """
    client = get_client(ctx)
    version, result = service.validate_data(
        client.registry,
        client.validation,
        ref,
        path,
        strict=strict,
        options=storage_options(client.settings),
    )
    if report is not None:
        contract = service.get_contract(client.validation, version)
        html = render_contract_report(contract, result, title=version.ref, source=str(path))
        with writing_to(report):
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(html, encoding="utf-8")
    if as_json:
        print_json({"model": version.ref, "file": str(path), **result.to_dict()})
    else:
        style = "red" if not result.passed else "yellow" if result.violations else "green"
        console.print(
            f"[bold {style}]{version.ref}: {escape(result.summary())}[/]", highlight=False
        )
        if result.violations:
            rows = [
                [
                    v.column,
                    v.severity,
                    v.expectation,
                    v.expected,
                    f"{v.count}/{v.checked}",
                    ", ".join(map(str, v.rows)) or "-",
                    ", ".join(map(repr, v.values)) or "-",
                ]
                for v in result.violations
            ]
            columns = ["column", "severity", "expectation", "expected", "failing", "rows", "values"]
            console.print(table("Violations", columns, rows))
        if report is not None:
            console.print(f"report: {report}", markup=False)
    if not result.passed:
        raise typer.Exit(1)


@app.command("model")
def model(
    ctx: typer.Context,
    candidate: str = typer.Argument(..., help="The candidate version (iris:4)."),
    against: str | None = typer.Option(
        None, "--against", help="Champion to compare with (default: the model's production)."
    ),
    data_path: str = typer.Option(
        ..., "--data", help="Holdout table (file, s3:// or URL#TABLE) with the target column."
    ),
    target: str = typer.Option(..., "--target", help="Name of the label column in --data."),
    threshold: list[str] = typer.Option(
        [], "--threshold", help="METRIC>=VALUE or METRIC<=VALUE, e.g. accuracy>=0.9 (repeatable)."
    ),
    min_change: list[str] = typer.Option(
        [],
        "--min-change",
        help="Beat the champion: METRIC:+DELTA or METRIC:+PCT% (repeatable).",
    ),
    slice_column: str | None = typer.Option(None, "--slice", help="Column to slice by."),
    max_slice_gap: list[str] = typer.Option(
        [], "--max-slice-gap", help="METRIC:GAP, largest allowed gap between slices."
    ),
    min_slice_rows: int = typer.Option(
        DEFAULT_MIN_SLICE_ROWS, "--min-slice-rows", help="Ignore slices smaller than this."
    ),
    latency_budget_ms: float | None = typer.Option(
        None, "--latency-budget-ms", help="Median single-row prediction time budget."
    ),
    latency_samples: int = typer.Option(
        DEFAULT_LATENCY_SAMPLES, "--latency-samples", help="Single-row predictions to time."
    ),
    size_budget_mb: float | None = typer.Option(
        None, "--size-budget-mb", help="Package size budget (MB = 10^6 bytes)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Gate CANDIDATE on holdout data; the result is stored with it. Exit 1 on failure."""
    client = get_client(ctx)
    spec = build_spec(
        thresholds=threshold,
        min_changes=min_change,
        slice_column=slice_column,
        max_slice_gaps=max_slice_gap,
        min_slice_rows=min_slice_rows,
        latency_budget_ms=latency_budget_ms,
        size_budget_mb=size_budget_mb,
        latency_samples=latency_samples,
    )
    holdout = service.read_data(client.settings, data_path)
    record, report = service.validate_model(
        client.registry,
        client.validation,
        candidate,
        data=holdout,
        target=target,
        spec=spec,
        against=against,
    )
    calibration = _calibrate_on_holdout(client, candidate, holdout, target)
    if as_json:
        print_json(
            {
                "gate_result_id": record.id,
                "created_at": record.created_at,
                **report.to_dict(),
                "cbpe_calibration": calibration,
            }
        )
    else:
        style = "green" if report.passed else "red"
        console.print(f"[bold {style}]{escape(report.summary())}[/]", highlight=False)
        if calibration is not None:
            console.print(calibration, style="dim", markup=False, highlight=False)
        metrics = sorted(set(report.candidate_metrics) | set(report.champion_metrics))
        rows = [
            [m, _fmt(report.candidate_metrics.get(m)), _fmt(report.champion_metrics.get(m))]
            for m in metrics
        ]
        console.print(
            table(f"Metrics on {report.n_rows} rows", ["metric", "candidate", "champion"], rows)
        )
        checks = [["pass" if c.passed else "FAIL", c.requirement, c.message] for c in report.checks]
        console.print(table("Checks", ["", "requirement", "detail"], checks))
        for s in report.slices:
            slice_rows = [[k, _fmt(v), s.rows.get(k)] for k, v in s.values.items()]
            slice_rows += [[k, f"skipped: {why}", s.rows.get(k)] for k, why in s.skipped.items()]
            console.print(
                table(f"{s.metric} by {s.column}", [s.column, s.metric, "rows"], slice_rows)
            )
    if not report.passed:
        raise typer.Exit(1)


def _calibrate_on_holdout(client: Any, ref: str, holdout: Any, target: str) -> str | None:
    """Fit the candidate's CBPE calibration on the labelled holdout and store it with the
    version, so performance estimates of it are calibrated from then on."""
    version = client.registry.resolve(ref)
    note: str | None = client.calibrations.fit_on_holdout(
        version, client.registry.load(version.ref), holdout, target
    )
    return note


@app.command("contract")
def contract(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Model version (iris:4)."),
    export: str = typer.Option(
        "json", "--export", help=f"Print the contract as one of: {', '.join(EXPORT_FORMATS)}."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file instead."),
    import_path: Path | None = typer.Option(
        None, "--import", help="Replace the contract with this (edited) JSON contract."
    ),
    infer_path: str | None = typer.Option(
        None, "--infer", help="Infer a new contract from this training-data table."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why; kept in the audit log."),
) -> None:
    """Show, export, edit (--import) or re-infer (--infer) the data contract of REF."""
    client = get_client(ctx)
    version = client.registry.resolve(ref)
    actor = client.settings.actor
    if import_path is not None and infer_path is not None:
        raise typer.BadParameter("give --import or --infer, not both")
    if import_path is not None:
        record = service.import_contract(
            client.validation, version, import_path, actor=actor, reason=reason
        )
        console.print(
            f"{version.ref}: contract revision {record.revision} imported from {import_path}",
            markup=False,
        )
        return
    if infer_path is not None:
        record = service.store_contract_for_version(
            client.validation, version, service.read_data(client.settings, infer_path), actor=actor
        )
        console.print(
            f"{version.ref}: contract revision {record.revision} inferred from {infer_path}",
            markup=False,
        )
        return
    current = service.get_contract(client.validation, version)
    text = export_contract(current, export, name=version.ref)
    if output is not None:
        with writing_to(output):
            output.write_text(text, encoding="utf-8")
        console.print(f"{version.ref}: contract written to {output} ({export})", markup=False)
    else:
        typer.echo(text, nl=False)


@app.command("policy")
def policy(
    ctx: typer.Context,
    required_approvals: int | None = typer.Option(
        None, "--required-approvals", help="Approvals a version needs before production."
    ),
    model_name: str | None = typer.Option(
        None, "--model", help="Apply to this model only (default: the whole registry)."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why; kept in the audit log."),
) -> None:
    """Show or set how many approvals production needs (per model or registry-wide)."""
    client = get_client(ctx)
    store = client.validation
    scope = "the registry" if model_name is None else f"model {model_name!r}"
    if required_approvals is not None:
        store.set_required_approvals(
            model_name, required_approvals, actor=client.settings.actor, reason=reason
        )
        console.print(f"{scope}: production needs {required_approvals} approval(s)")
        return
    if model_name is None:
        raise typer.BadParameter("give --model NAME to show its policy, or --required-approvals N")
    required, source = store.required_approvals(model_name)
    where = {None: "default", "*": "registry-wide"}.get(source, "set on the model")
    console.print(f"{scope}: production needs {required} approval(s) ({where})")


def _fmt(value: float | None) -> str:
    if value is None or value != value:  # NaN: undefined on this data
        return "-"
    return f"{value:.4f}"


__all__ = ["app"]
