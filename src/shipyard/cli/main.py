"""The ``shipyard`` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from shipyard import __version__
from shipyard.cli import (
    approve,
    audit,
    deploy,
    loop,
    models,
    monitor,
    optimize,
    package,
    predict,
    quickstart,
    runs,
    serve,
    validate,
)
from shipyard.cli._common import ShipyardGroup
from shipyard.cli.drift import make_drift_command
from shipyard.cli.drift_registry import load_logged_window, load_model_reference

app = typer.Typer(
    rich_markup_mode=None,  # plain help: option names are never cut short (see _common)
    cls=ShipyardGroup,
    help="Shipyard: take a trained model to production and keep it healthy there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.command("audit")(audit.audit_command)
app.command("package")(package.package_command)
app.command("quickstart")(quickstart.quickstart_command)
app.command("serve")(serve.serve_command)
app.command("predict")(predict.predict_command)
app.command("optimize")(optimize.optimize_command)
app.command("drift")(make_drift_command(load_model_reference, load_logged_window))
app.add_typer(validate.app, name="validate")
app.add_typer(monitor.app, name="monitor")
app.add_typer(loop.app, name="loop")
app.command("approve")(approve.approve_command)
app.command("reject")(approve.reject_command)
app.add_typer(deploy.app, name="deploy")
app.command("promote")(deploy.promote_command)
app.command("rollback")(deploy.rollback_command)


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
