"""``shipyard ui``: the web UI over this store (models, runs, deployments, monitoring).

Read-only without a login; changes need a user from ``SHIPYARD_UI_USERS``
(``shipyard ui --hash-password`` makes the hash) or the admin token.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from shipyard.cli._common import console, err_console, get_client
from shipyard.errors import InvalidInputError


def ui_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(5050, "--port", min=1, max=65535, help="Port to listen on."),
    loop_config: Path | None = typer.Option(
        None,
        "--loop-config",
        envvar="SHIPYARD_LOOP_CONFIG",
        help="Loop config (YAML file or folder): shows trigger cool-downs, allows loop runs.",
    ),
    hash_password: bool = typer.Option(
        False,
        "--hash-password",
        help=(
            "Print an argon2 hash of a password, for SHIPYARD_UI_USERS: asked twice on a "
            "terminal, else read as the first line of standard input."
        ),
    ),
) -> None:
    """Serve the web UI: models, runs, deployments, monitoring, loop and audit pages."""
    if hash_password:
        from shipyard.ui.auth import hash_password as make_hash

        typer.echo(make_hash(_read_password()))
        return
    from shipyard.ui.server import serve, warning_for

    client = get_client(ctx)
    settings = client.settings
    logins = bool(settings.ui_users) or settings.admin_token is not None
    warning = warning_for(host, logins=logins)
    if warning:
        err_console.print(f"[yellow]{escape(warning)}[/]", highlight=False, soft_wrap=True)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    console.print(
        f"Shipyard UI on {where} ({'log in to change things' if logins else 'read-only'}); "
        "Ctrl+C stops it.",
        highlight=False,
        soft_wrap=True,
    )
    serve(client, host=host, port=port, loop_config=loop_config)


def _read_password() -> str:
    """The password to hash: asked (twice) on a terminal, else the first line of stdin.

    The prompts go to standard error, so ``$(shipyard ui --hash-password)`` captures
    the hash alone.
    """
    if sys.stdin.isatty():
        password = str(
            typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInputError("--hash-password: the password is empty; give one.")
    return password
