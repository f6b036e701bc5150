"""``shipyard drift``: compare current data with a reference, gate CI on the verdict.

Exit codes (those of every command): 0 no dataset drift, 1 dataset drift
detected (a failing verdict, for CI to gate on) or an error (with a message
naming the table or column and what was expected), 2 a usage error.

Thin: parse the options, turn a model reference into its stored profile (and
``--window`` into the model's logged inputs), call
:func:`shipyard.drift.compare.compare`, render.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from shipyard.cli._common import FoldingTable, console, get_client, table
from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard._client import Shipyard
    from shipyard.drift.profile import ReferenceProfile
    from shipyard.drift.result import DriftResult

EXIT_OK, EXIT_DRIFT = 0, 1

_TABLE_HELP = (
    "a CSV, Parquet or JSON lines file (also .gz, s3://) or a database URL#TABLE / URL#SELECT ..."
)


def drift_command(
    ctx: typer.Context,
    reference: Annotated[
        str,
        typer.Option(
            "--reference",
            help=f"Reference data: {_TABLE_HELP}; or a registered model such as "
            "churn@production (the profile stored with that version).",
            metavar="TABLE|MODEL",
        ),
    ],
    current: Annotated[
        str | None,
        typer.Option("--current", help=f"Current data: {_TABLE_HELP}.", metavar="TABLE"),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="Instead of --current: the model's logged inputs of the last WINDOW "
            "(e.g. 24h; a uniform sample of 100,000 rows when it holds more); --reference "
            "must then be a registered model.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write a self-contained HTML report here.", metavar="FILE"),
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option("--json", help="Write the JSON result here ('-' prints it instead)."),
    ] = None,
    categorical: Annotated[
        str | None, typer.Option("--categorical", help="Columns to treat as categorical: a,b")
    ] = None,
    numerical: Annotated[
        str | None, typer.Option("--numerical", help="Columns to treat as numerical: c,d")
    ] = None,
    stattest: Annotated[
        str | None,
        typer.Option(
            "--stattest",
            help="Test for every column: ks, chisquare, z, wasserstein, jensenshannon, psi, "
            "kl_div, hellinger.",
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Threshold for every column.")
    ] = None,
    drift_share: Annotated[
        float, typer.Option("--drift-share", help="Dataset drifts at this share of columns.")
    ] = 0.5,
    fdr: Annotated[
        bool, typer.Option("--fdr", help="Benjamini-Hochberg FDR control of p-value tests.")
    ] = False,
) -> None:
    """Test every column of CURRENT against REFERENCE; exit 1 if the dataset drifted."""
    from shipyard.config import Settings
    from shipyard.drift.compare import compare
    from shipyard.tables import storage_options

    if (current is None) == (window is None):
        raise typer.BadParameter("Give exactly one of --current TABLE and --window 24h.")
    to_stdout = json_path == "-"
    with console.status("Reading data and testing columns...", spinner="dots"):
        ref: str | pd.DataFrame | ReferenceProfile = reference
        if not _is_table(reference):
            ref = _model_reference(get_client(ctx), reference)
        elif window is not None:
            raise InvalidInputError(
                "--window reads a registered model's prediction log: give --reference MODEL "
                "(e.g. churn@production), not a table."
            )
        cur = current if window is None else _logged_window(get_client(ctx), reference, window)
        assert cur is not None
        result = compare(
            ref,
            cur,
            stattest=stattest,
            threshold=threshold,
            drift_share=drift_share,
            fdr=fdr,
            categorical=categorical,
            numerical=numerical,
            html=report,
            json_path=None if to_stdout else json_path,
            storage_options=storage_options(Settings()),
        )
    if to_stdout:
        from shipyard.drift.report_json import to_json

        typer.echo(to_json(result))
    else:
        _render(result, json_path=json_path, report=report)
    raise typer.Exit(code=EXIT_DRIFT if result.dataset_drift else EXIT_OK)


def _is_table(value: str) -> bool:
    """A table location rather than a model reference.

    A name with a table's extension is a table even when it is missing, so a
    typo says "no such file" rather than "no model named 'ref.parquet'".
    Model references (``iris``, ``iris:3``, ``iris@staging``) never hold ``://``.
    """
    from shipyard.tables.locations import is_table_file

    return "://" in value or is_table_file(value) or Path(value).is_file()


def _model_reference(client: Shipyard, ref: str) -> ReferenceProfile:
    """The drift reference profile stored with the version ``ref`` resolves to."""
    return client.references.load(client.registry.resolve(ref))


#: Rows of a --window drawn for the tests (all of them when the window holds fewer).
WINDOW_SAMPLE_ROWS = 100_000


def _logged_window(client: Shipyard, ref: str, window: str) -> pd.DataFrame:
    """The inputs the model behind ``ref`` answered in the last ``window``."""
    version = client.registry.resolve(ref)
    # A uniform sample of the window (DuckDB, bounded memory): a month of logs can hold
    # tens of millions of rows over thousands of segments.
    _, current = client.prediction_log.sample_inputs(
        version.model, since=window, rows=WINDOW_SAMPLE_ROWS
    )
    if current.empty:
        raise InvalidInputError(
            f"No predictions of {version.model!r} were logged in the last {window}: serve it "
            "with `shipyard serve` (the prediction log is on by default) or widen --window."
        )
    return current


def result_table(result: DriftResult) -> FoldingTable:
    """Every tested column, drifted first; on a narrow terminal it wraps or folds each
    row into ``column  value`` lines rather than cutting a name short."""
    rows = []
    for col in result.sorted_columns():
        verdict = Text("DRIFT", style="bold red") if col.drift_detected else Text("ok", "green")
        rows.append(
            [col.column, col.type, col.stattest, f"{col.score:.4g}", f"{col.threshold:g}", verdict]
        )
    return table(
        "Drift by column",
        ["Column", "Type", "Test", "Score", "Threshold", "Drift"],
        rows,
        right=("Score", "Threshold"),
    )


def _render(result: DriftResult, *, json_path: str | None, report: Path | None) -> None:
    console.print(result_table(result))
    for skipped in result.skipped:
        console.print(
            f"[dim]not tested: {escape(skipped.column)} ({escape(skipped.reason)})[/]",
            highlight=False,
        )
    verdict = "No dataset drift"
    if result.dataset_drift:
        verdict = "[bold red]Dataset drift detected[/]"
    console.print(
        f"{verdict}: {result.n_drifted} of {result.n_columns} columns drifted "
        f"(share {result.share:.2f}, threshold {result.drift_share:g})."
    )
    if result.vanished_columns:
        console.print(
            f"[bold red]Vanished[/] (every current value is missing, NaN or infinite; "
            f"this alone is dataset drift): {escape(', '.join(result.vanished_columns))}",
            highlight=False,
        )
    if json_path:
        console.print(f"JSON written to {escape(json_path)}", highlight=False)
    if report is not None:
        console.print(f"HTML report written to {escape(str(report))}", highlight=False)


__all__ = ["EXIT_DRIFT", "EXIT_OK", "drift_command", "result_table"]
