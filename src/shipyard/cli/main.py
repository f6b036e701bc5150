"""The ``shipyard`` command: one Typer app, one module per command group.

Every command line pays for what this module imports, so it imports Typer
and nothing of Shipyard's stages: each command's module (and with it pandas,
scikit-learn, SQLAlchemy, FastAPI...) is imported only when that command
runs. ``shipyard --help`` lists the commands from the table below, whose help
lines ``tests/cli/test_startup_imports.py`` keeps equal to the commands' own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import typer

# Typer ships its own copy of Click; its groups and commands are these classes.
from typer import _click as click
from typer.core import TyperCommand
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from shipyard._version import __version__
from shipyard.cli._common import ShipyardGroup, command_group

# What a loader returns: a command group (a Typer app) or one command's function.
Loaded = typer.Typer | Callable[..., Any]


@dataclass(frozen=True)
class LazyCommand:
    """A command known by name and help line, imported when it runs."""

    help: str  # first paragraph of the command's own help, for `shipyard --help`
    load: Callable[[], Loaded]


# In the order `shipyard --help` lists them: single commands, then groups.
COMMANDS: dict[str, LazyCommand] = {}


def command(name: str, help: str) -> Callable[[Callable[[], Loaded]], Callable[[], Loaded]]:
    """Register the loader of command NAME (it imports the command's module)."""

    def register(load: Callable[[], Loaded]) -> Callable[[], Loaded]:
        COMMANDS[name] = LazyCommand(help=help, load=load)
        return load

    return register


class RootGroup(ShipyardGroup):
    """The root group: builds a command from its loader on first use."""

    _listing = False  # True while --help lists the commands: show, don't import

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        lazy = COMMANDS[cmd_name]
        if self._listing:
            return TyperCommand(
                name=cmd_name, help=lazy.help, rich_markup_mode=self.rich_markup_mode
            )
        self.commands[cmd_name] = self._build(cmd_name, lazy.load())
        return self.commands[cmd_name]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as exc:
            # Typer suggests among the commands built so far; this group knows them all by name.
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if self.suggest_commands and matches and "Did you mean" not in exc.message:
                names = ", ".join(repr(name) for name in matches)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {names}?"
            raise

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def _build(self, name: str, loaded: Loaded) -> click.Command:
        # The same conversion Typer applies to app.add_typer / app.command on the root.
        if isinstance(loaded, typer.Typer):
            return get_group_from_info(
                TyperInfo(loaded, name=name),
                pretty_exceptions_short=app.pretty_exceptions_short,
                suggest_commands=self.suggest_commands,
                rich_markup_mode=self.rich_markup_mode,
            )
        return get_command_from_info(
            CommandInfo(name=name, callback=loaded),
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=self.rich_markup_mode,
        )


app = command_group(
    "Shipyard: take a trained model to production and keep it healthy there.",
    cls=RootGroup,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Shipyard: take a trained model to production and keep it healthy there."""


@command("audit", "Show the audit log of changes to aliases, archives and deployments.")
def _audit() -> Loaded:
    from shipyard.cli.audit import audit_command

    return audit_command


@command(
    "package",
    "Write a Dockerfile, pinned requirements, Kubernetes manifests and the model package.",
)
def _package() -> Loaded:
    from shipyard.cli.package import package_command

    return package_command


@command(
    "quickstart",
    "Train, register, serve, monitor, detect drift, retrain through the loop, gate, canary.",
)
def _quickstart() -> Loaded:
    from shipyard.cli.quickstart import quickstart_command

    return quickstart_command


@command(
    "serve", "Serve a registered model: /predict, /invocations (MLflow), /v2 (KServe), /metrics."
)
def _serve() -> Loaded:
    from shipyard.cli.serve import serve_command

    return serve_command


@command(
    "predict",
    "Score a Parquet/CSV/JSON lines file or a SQL table with a registered model, in chunks.",
)
def _predict() -> Loaded:
    from shipyard.cli.predict import predict_command

    return predict_command


@command("optimize", "Convert a version to ONNX and keep it only if it answers like the original.")
def _optimize() -> Loaded:
    from shipyard.cli.optimize import optimize_command

    return optimize_command


@command(
    "export",
    "Export a version to run without Shipyard: ONNX graph, manifest, Python and browser runners.",
)
def _export() -> Loaded:
    from shipyard.cli.export import export_command

    return export_command


@command("drift", "Test every column of CURRENT against REFERENCE; exit 1 if the dataset drifted.")
def _drift() -> Loaded:
    from shipyard.cli.drift import drift_command

    return drift_command


@command("approve", "Approve a model version for production.")
def _approve() -> Loaded:
    from shipyard.cli.approve import approve_command

    return approve_command


@command(
    "reject",
    "Reject a model version: it cannot take production until approved again (or forced).",
)
def _reject() -> Loaded:
    from shipyard.cli.approve import reject_command

    return reject_command


@command("promote", "Make a deployment's canary (or an A/B arm) its primary, on every worker.")
def _promote() -> Loaded:
    from shipyard.cli.deploy import promote_command

    return promote_command


@command(
    "rollback", "Back to the previous primary in one change; every worker follows within seconds."
)
def _rollback() -> Loaded:
    from shipyard.cli.deploy import rollback_command

    return rollback_command


@command("ui", "Serve the web UI: models, runs, deployments, monitoring, loop and audit pages.")
def _ui() -> Loaded:
    from shipyard.cli.ui import ui_command

    return ui_command


@command("models", "Registered models, their versions and aliases.")
def _models() -> Loaded:
    from shipyard.cli.models import app

    return app


@command(
    "runs",
    "Experiment runs: params, metrics, datasets, artifacts; search, compare, import; "
    "reproduce a run.",
)
def _runs() -> Loaded:
    from shipyard.cli.runs import app

    return app


@command("data", "Dataset versions: snapshot tables, list, show, diff, get them back, prune.")
def _data() -> Loaded:
    from shipyard.cli.data import app

    return app


@command("validate", "Check data against a model's contract, and candidate models against gates.")
def _validate() -> Loaded:
    from shipyard.cli.validate import app

    return app


@command("monitor", "Monitoring: ground-truth labels, performance over time, concept drift.")
def _monitor() -> Loaded:
    from shipyard.cli.monitor import app

    return app


@command("loop", "The closed loop: retraining triggers, retrain, gate, canary, promote.")
def _loop() -> Loaded:
    from shipyard.cli.loop import app

    return app


@command(
    "features", "Feature store: definitions, point-in-time training sets, online features, skew."
)
def _features() -> Loaded:
    from shipyard.cli.features import app

    return app


@command(
    "deploy",
    "Deployments: primary, canary, A/B split, shadows; progressive rollout and reports. "
    "`shipyard deploy NAME --model REF [--canary W]` creates or changes one.",
)
def _deploy() -> Loaded:
    from shipyard.cli.deploy import app

    return app
