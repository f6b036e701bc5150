"""What every CLI command shares: the client, output helpers, error handling.

Commands stay thin: parse, call a service function, render. Any
:class:`~shipyard.errors.ShipyardError` becomes ``Error: <message>`` on
stderr and exit code 1; drift detection uses exit code 3 of its own.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

if TYPE_CHECKING:
    from shipyard._client import Shipyard

from shipyard.config import Settings
from shipyard.errors import ShipyardError

console = Console()
err_console = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


class ShipyardGroup(TyperGroup):
    """Root command group: turns Shipyard's own errors into clean exits."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ShipyardError as exc:
            # The message is text, not Rich markup: "shipyard[s3]" must print as written.
            err_console.print(
                f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=1) from exc


def get_client(ctx: typer.Context) -> Shipyard:
    """The client made once per command line from the environment and shipyard.toml."""
    from shipyard._client import Shipyard  # the stores pull in SQLAlchemy and pandas

    root = ctx.find_root()
    if not isinstance(root.obj, Shipyard):
        root.obj = Shipyard(Settings())
    return root.obj


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, default=str) + "\n")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        # Cells are data (names, reasons, params), never Rich markup: "[v2]" stays.
        out.add_row(*("-" if cell is None else escape(str(cell)) for cell in row))
    return out
