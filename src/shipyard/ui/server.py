"""Serve the web UI with uvicorn, saying where and warning when it is open to others.

>>> exposed_without_login("0.0.0.0", logins=False)
True
"""

from __future__ import annotations

from pathlib import Path

from shipyard._client import Shipyard

__all__ = ["exposed_without_login", "serve", "warning_for"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def exposed_without_login(host: str, *, logins: bool) -> bool:
    """Bound beyond this machine with nobody able to log in."""
    return host not in LOOPBACK and not logins


def warning_for(host: str, *, logins: bool) -> str | None:
    if not exposed_without_login(host, logins=logins):
        return None
    return (
        f"warning: the UI listens on {host}, reachable from other machines, and no login is "
        "configured: anyone who reaches it can read every model, run and audit entry (it "
        "stays read-only). Set SHIPYARD_UI_USERS or SHIPYARD_ADMIN_TOKEN, or bind 127.0.0.1."
    )


def serve(client: Shipyard, *, host: str, port: int, loop_config: Path | None = None) -> None:
    import uvicorn

    from shipyard.ui.app import create_app

    app = create_app(client, loop_config=loop_config)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
