"""``shipyard drift``: compare current data with a reference, gate CI on the verdict.

Exit codes (those of every command): 0 no dataset drift, 1 dataset drift
detected (a failing verdict, for CI to gate on) or an error (with a message
naming the file or column and what was expected), 2 a usage error.

Register it on the root app with::

    app.command("drift")(drift_command)

``--reference`` takes a Parquet or CSV file today. To also accept a registered
model reference (``churn@production``: the profile stored with that version),
build the command with a loader instead::

    app.command("drift")(make_drift_command(reference_loader=load_profile))

where ``load_profile(ref: str)`` returns a DataFrame or a ReferenceProfile; any
``--reference`` value that is not an existing file is handed to it.
"""

# No `from __future__ import annotations`: Typer reads the Annotated options of the
# command built inside make_drift_command, which refer to its local help text.

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from shipyard.cli._common import FoldingTable, table, writing_to
from shipyard.drift.columns import split_names
from shipyard.drift.detector import DriftDetector
from shipyard.drift.profile import ReferenceProfile
from shipyard.drift.report_html import write_html
from shipyard.drift.report_json import to_json, write_json
from shipyard.drift.result import DriftResult
from shipyard.drift.stattests import STATTESTS
from shipyard.errors import InvalidInputError, ShipyardError

EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 1

ReferenceLoader = Callable[[str], pd.DataFrame | ReferenceProfile]
#: ``(reference, window)`` -> the current data: the inputs a registered model's
#: prediction log holds for the last ``window`` (e.g. ``24h``).
WindowLoader = Callable[[str, str], pd.DataFrame]


_DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


def read_table(path: str | Path, *, role: str = "data") -> pd.DataFrame:
    """Read a Parquet (``.parquet``/``.pq``) or CSV (``.csv``, ``.csv.gz``) file."""
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise InvalidInputError(f"The {role} file '{path}' does not exist (or is not a file).")
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path)
    except Exception as exc:  # pyarrow and the CSV parser raise many types
        raise InvalidInputError(f"Could not read the {role} file '{path}': {exc}") from exc
    raise InvalidInputError(
        f"The {role} file '{path}' has an unknown extension: expected .parquet, .pq, .csv "
        "or .csv.gz."
    )


def load_reference(
    value: str, reference_loader: ReferenceLoader | None = None
) -> pd.DataFrame | ReferenceProfile:
    """A file path is read; anything else goes to ``reference_loader`` if given.

    A name with a data file's suffix is a file even when it is missing, so a typo
    says "file does not exist" rather than "no model named 'ref.parquet'".
    """
    looks_like_file = value.lower().endswith(_DATA_SUFFIXES)
    if looks_like_file or Path(value).is_file() or reference_loader is None:
        return read_table(value, role="reference")
    return reference_loader(value)


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


def run_drift(
    reference: str,
    current: str | pd.DataFrame,
    *,
    report: Path | None = None,
    json_path: str | None = None,
    categorical: str | None = None,
    numerical: str | None = None,
    stattest: str | None = None,
    threshold: float | None = None,
    drift_share: float = 0.5,
    fdr: bool = False,
    reference_loader: ReferenceLoader | None = None,
    console: Console | None = None,
) -> int:
    """Do the work of ``shipyard drift`` and return its exit code (0, or 1 on drift).

    Raises :class:`~shipyard.errors.ShipyardError` on bad input; the command
    turns that into exit code 1.
    """
    console = console or Console()
    to_stdout = json_path == "-"
    with console.status("Reading data and testing columns...", spinner="dots"):
        ref = load_reference(reference, reference_loader)
        cur = current if isinstance(current, pd.DataFrame) else read_table(current, role="current")
        detector = DriftDetector(
            stattest=stattest,
            threshold=threshold,
            drift_share=drift_share,
            fdr=fdr,
            categorical=split_names(categorical),
            numerical=split_names(numerical),
        )
        result = detector.fit(ref).score(cur)
        if report is not None:
            with writing_to(report):
                write_html(report, result, detector, cur)
    if to_stdout:
        typer.echo(to_json(result))
    else:
        console.print(result_table(result))
        for skipped in result.skipped:
            console.print(f"[dim]not tested: {skipped.column} ({skipped.reason})[/]")
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
                f"this alone is dataset drift): {', '.join(result.vanished_columns)}",
                highlight=False,
            )
        if json_path:
            with writing_to(json_path):
                written = write_json(json_path, result)
            console.print(f"JSON written to {written}")
        if report is not None:
            console.print(f"HTML report written to {report}")
    return EXIT_DRIFT if result.dataset_drift else EXIT_OK


def make_drift_command(
    reference_loader: ReferenceLoader | None = None, window_loader: WindowLoader | None = None
) -> Callable[..., None]:
    """Build the Typer command; ``reference_loader`` resolves non-file references and
    ``window_loader`` reads ``--window`` of a model's prediction log."""
    ref_help, ref_metavar = "Reference data: a .parquet or .csv file.", "FILE"
    if reference_loader is not None:
        ref_help += " Or a registered model reference such as churn@production."
        ref_metavar = "FILE|MODEL"

    def drift_command(
        reference: Annotated[str, typer.Option("--reference", help=ref_help, metavar=ref_metavar)],
        current: Annotated[
            str | None,
            typer.Option(
                "--current", help="Current data: a .parquet or .csv file.", metavar="FILE"
            ),
        ] = None,
        window: Annotated[
            str | None,
            typer.Option(
                "--window",
                help="Instead of --current: the model's logged inputs of the last WINDOW "
                "(e.g. 24h); --reference must then be a registered model.",
            ),
        ] = None,
        report: Annotated[
            Path | None,
            typer.Option(
                "--report", help="Write a self-contained HTML report here.", metavar="FILE"
            ),
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
            typer.Option("--stattest", help=f"Test for every column: {', '.join(STATTESTS)}."),
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
        try:
            if (current is None) == (window is None):
                raise InvalidInputError("Give exactly one of --current FILE and --window 24h.")
            if window is not None and window_loader is None:
                raise InvalidInputError("--window needs a registry; this command has none.")
            data = current if window is None else window_loader(reference, window)  # type: ignore[misc]
            code = run_drift(
                reference,
                data,
                report=report,
                json_path=json_path,
                categorical=categorical,
                numerical=numerical,
                stattest=stattest,
                threshold=threshold,
                drift_share=drift_share,
                fdr=fdr,
                reference_loader=reference_loader,
            )
        except ShipyardError as exc:
            stderr = Console(stderr=True)
            stderr.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=EXIT_ERROR) from exc
        raise typer.Exit(code=code)

    return drift_command


drift_command = make_drift_command()
