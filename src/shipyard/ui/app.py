"""The web UI's ASGI app: pages over the same stores and services as the CLI.

Every page is a GET that reads; every change is a POST behind the login and
CSRF checks of :mod:`shipyard.ui.web`. The static files (htmx, the style
sheet) are served from the package itself, so a page loads nothing from any
other host.

>>> app = create_app(Shipyard(Settings(home="/tmp/ui-demo")))   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from shipyard._client import Shipyard
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError, ShipyardError
from shipyard.ui import (
    pages_actions,
    pages_audit,
    pages_deployments,
    pages_login,
    pages_loop,
    pages_models,
    pages_monitoring,
    pages_runs,
)
from shipyard.ui.auth import COOKIE, SESSION_SECONDS, Sessions, Users
from shipyard.ui.run_ids import AmbiguousRunId
from shipyard.ui.web import UiState, render

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"


def _status(exc: ShipyardError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, InvalidInputError):
        return 400
    return 500


def create_app(
    client: Shipyard,
    *,
    users: Users | None = None,
    sessions: Sessions | None = None,
    loop_config: Path | None = None,
) -> FastAPI:
    """The UI over ``client``'s stores; logins from its settings unless ``users`` given."""
    settings = client.settings
    if users is None:
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        users = Users(settings.ui_users, admin_token=token)
    if sessions is None:
        secret = settings.ui_secret.get_secret_value() if settings.ui_secret else None
        sessions = Sessions(secret)
    app = FastAPI(title="Shipyard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = UiState(client, users, sessions, loop_config=loop_config)

    @app.middleware("http")
    async def session_cookie(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        found = sessions.load(request.cookies.get(COOKIE))
        request.state.new_session = found is None
        request.state.session = found or sessions.new()
        response = await call_next(request)
        session = request.state.session
        if request.state.new_session or session is not found:
            response.set_cookie(
                COOKIE,
                sessions.dump(session),
                max_age=SESSION_SECONDS,
                httponly=True,
                samesite="strict",
                path="/",
            )
        # Pages are never framed by another site, and never load from anywhere else.
        response.headers["X-Frame-Options"] = "DENY"
        # A route may set a stricter policy of its own (a run's artifact bytes: sandboxed).
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.exception_handler(ShipyardError)
    async def shipyard_error(request: Request, exc: ShipyardError) -> Response:
        return render(request, "error.html", _status(exc), message=str(exc))

    @app.exception_handler(AmbiguousRunId)
    async def ambiguous_run(request: Request, exc: AmbiguousRunId) -> Response:
        choices = [(f"/runs/{r}", r) for r in exc.ids]
        return render(request, "error.html", 409, message=exc.message, choices=choices)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return render(request, "error.html", exc.status_code, message=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        return render(request, "error.html", 400, message=f"Bad request. {problems}")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/models", status_code=303)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (
        pages_login,
        pages_models,
        pages_runs,
        pages_deployments,
        pages_monitoring,
        pages_loop,
        pages_audit,
        pages_actions,
    ):
        app.include_router(module.router)
    return app
