"""What every CLI command shares: the client, output helpers, error handling.

Commands stay thin: parse, call a service function, render. Any
:class:`~shipyard.errors.ShipyardError`, and any ``OSError`` from the file
system (named by its path), becomes one line ``Error: <message>`` on stderr
and exit code 1; a usage error (a bad flag) is Click's exit code 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard._client import Shipyard
    from shipyard.config import Settings

console = Console()
err_console = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


class HelpGroup(TyperGroup):
    """A command group whose help never cuts a word short.

    Every app is made with ``rich_markup_mode=None``: Click's plain help lays out
    option names in full at any width, where Rich's panels cut them to
    ``--monitor-interv…`` at 80 columns. Click still shortens each command's
    summary in a group's list; here it is shown whole, wrapped.
    """

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class ShipyardGroup(HelpGroup):
    """Root command group: turns Shipyard's own errors into clean exits."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ShipyardError as exc:
            print_error(str(exc))
            raise typer.Exit(code=1) from exc
        except BrokenPipeError:
            raise  # the reader went away (`| head`): nothing to tell anyone
        except OSError as exc:
            # The file system said no (permission, missing folder, full disk, a folder
            # where a file belongs): one line naming the path, never a traceback.
            print_error(os_error_message(exc))
            raise typer.Exit(code=1) from exc


def command_group(help: str, *, cls: type[HelpGroup] = HelpGroup, **options: Any) -> typer.Typer:
    """A ``shipyard <group>`` Typer app made the one way every group is made.

    Plain help (``rich_markup_mode=None``, see :class:`HelpGroup`), a group
    class that shows summaries whole, and the group's help when called with
    no arguments; ``options`` go to :class:`typer.Typer` as they are.
    """
    return typer.Typer(cls=cls, rich_markup_mode=None, help=help, no_args_is_help=True, **options)


def print_error(message: str) -> None:
    """``Error: message`` on stderr; the message is text, not Rich markup
    (``shipyard[s3]`` must print as written)."""
    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def writing_to(path: str | Path) -> Iterator[None]:
    """Name ``path`` in an ``OSError`` that does not (a full disk says only "No space
    left on device"), so the handler above can say which file it was."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def os_error_message(exc: OSError) -> str:
    """``<path>: <what the system said>``, e.g. ``/data/out.csv: Permission denied``."""
    what = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return f"{what} ({type(exc).__name__})"
    return f"{' -> '.join(paths)}: {what}."


def get_settings(ctx: typer.Context) -> Settings:
    """The command line's settings (the client's, once it is made), read once from the
    environment and shipyard.toml; without importing the stores (SQLAlchemy)."""
    from shipyard.config import Settings

    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    made = getattr(root.obj, "settings", None)  # a client's
    if isinstance(made, Settings):
        return made
    root.obj = Settings()
    return root.obj


def get_client(ctx: typer.Context) -> Shipyard:
    """The client made once per command line from the environment and shipyard.toml."""
    # Imported here, not at start-up: the settings need pydantic, the stores SQLAlchemy.
    from shipyard._client import Shipyard

    root = ctx.find_root()
    if not isinstance(root.obj, Shipyard):
        root.obj = Shipyard(get_settings(ctx))
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


def table(
    title: str | None, columns: list[str], rows: list[list[Any]], *, right: tuple[str, ...] = ()
) -> FoldingTable:
    """A table of plain-text cells that never cuts a value short (see :class:`FoldingTable`);
    ``right`` names the columns of numbers."""
    return FoldingTable(title, columns, rows, right=right)


def _cell(value: Any) -> Text:
    """A cell as text: a styled :class:`Text` stays as it is; anything else is plain
    text, never markup."""
    if isinstance(value, Text):
        return value
    return Text("-" if value is None else str(value))


class FoldingTable:
    """A Rich renderable: a table when it fits the terminal, else one block per row.

    Rich squeezes a table that is too wide by cutting cells to ``accura…`` and
    headers to ``vari…``. Here no value or column name is ever cut: when every
    column can have at least its longest word, the table is laid out with those
    widths and the spare room shared by need (cells wrap between words); when even
    that does not fit, each row is folded into ``column  value`` lines, as
    ``psql``'s expanded display does, so narrow terminals lose nothing.

    Cells are data (names, reasons, params), never Rich markup: ``[v2]`` stays;
    a cell that must be styled is passed as a :class:`rich.text.Text`.
    """

    def __init__(
        self,
        title: str | None,
        columns: list[str],
        rows: list[list[Any]],
        *,
        right: tuple[str, ...] = (),
    ) -> None:
        self.title = title
        self.columns = columns
        self.right = right  # columns of numbers, aligned right in the table layout
        self.rows = [[_cell(cell) for cell in row] for row in rows]

    def _title(self) -> Text | None:
        # A title names user things ("Versions of x", "A/B report: web"): text, not markup.
        return None if self.title is None else Text(self.title, style="table.title")

    def _table(self, widths: list[int] | None = None) -> Table:
        out = Table(title=self._title(), title_justify="left", header_style="bold")
        for i, column in enumerate(self.columns):
            out.add_column(
                Text(column),
                width=None if widths is None else widths[i],
                justify="right" if column in self.right else "left",
            )
        for row in self.rows:
            out.add_row(*row)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        available = options.max_width
        natural = self._table()
        full = Measurement.get(console, options.update_width(10**6), natural).maximum
        if full <= available:
            yield natural
            return
        # Per column: the longest word (below it a word would be cut) and the longest line.
        cells = [[Text(c), *(row[i] for row in self.rows)] for i, c in enumerate(self.columns)]
        wide = options.update_width(10**6)
        lows = [max(Measurement.get(console, wide, c).minimum for c in col) for col in cells]
        highs = [max(Measurement.get(console, wide, c).maximum for c in col) for col in cells]
        frame = full - sum(highs)  # borders and padding
        room = available - frame - sum(lows)
        if room < 0:
            yield self._folded()
            return
        need = [h - lo for h, lo in zip(highs, lows, strict=True)]
        total = sum(need) or 1
        widths = [lo + room * n // total for lo, n in zip(lows, need, strict=True)]
        yield self._table(widths)

    def _folded(self) -> Table:
        out = Table(
            title=self._title(),
            title_justify="left",
            show_header=False,
            box=box.SIMPLE,
            pad_edge=False,
        )
        out.add_column(style="bold", no_wrap=True)
        out.add_column(overflow="fold")
        for row in self.rows:
            for i, (column, cell) in enumerate(zip(self.columns, row, strict=True)):
                out.add_row(Text(column), cell, end_section=i == len(row) - 1)
        return out
