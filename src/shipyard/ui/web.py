"""What every page shares: the templates, the session of a request, the write check.

Templates autoescape everything: a description, tag or reason holding
``<script>`` is shown as text. :func:`render` gives each template the
logged-in user and the CSRF token its forms carry; :func:`write_form` reads a
POST's form and refuses it (403) without a logged-in session and that
session's CSRF token, before any route acts on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from shipyard.ui.auth import Session, Sessions, Users
from shipyard.ui.charts import fmt

if TYPE_CHECKING:
    from shipyard._client import Shipyard

__all__ = ["Form", "UiState", "render", "state", "write_form"]

TEMPLATES = Path(__file__).parent / "templates"
#: A form body larger than this is not a form a person typed.
MAX_FORM_BYTES = 64 * 1024


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _query(values: dict[str, Any], **changes: Any) -> str:
    """``values`` with ``changes`` as a query string (lists repeat their key; blanks dropped)."""
    merged = {**values, **changes}
    pairs = {k: v for k, v in merged.items() if v not in ("", None, [])}
    return urlencode(pairs, doseq=True)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.globals["qs"] = _query
    return env


@dataclass
class UiState:
    """The UI's one client and its guards, built at start-up."""

    client: Shipyard
    users: Users
    sessions: Sessions
    loop_config: Path | None = None
    env: Environment | None = None

    def __post_init__(self) -> None:
        if self.env is None:
            self.env = _environment()


def state(request: Request) -> UiState:
    ui: UiState = request.app.state.ui
    return ui


def session_of(request: Request) -> Session:
    found: Session = request.state.session
    return found


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` filled with ``context``, the user and the CSRF token."""
    ui = state(request)
    session = session_of(request)
    assert ui.env is not None
    page = ui.env.get_template(template).render(
        request=request,
        user=session.user,
        logins=ui.users.enabled,
        csrf=ui.sessions.csrf_token(session),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status_code)


class Form:
    """A posted form: the first value of each field, or all of them."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0].strip() if values else default

    def getall(self, name: str) -> list[str]:
        return [v.strip() for v in self.fields.get(name, []) if v.strip()]

    def require(self, name: str, what: str) -> str:
        value = self.get(name)
        if not value:
            raise HTTPException(400, f"The form field {name!r} is empty: give {what}.")
        return value


async def read_form(request: Request) -> Form:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"The form is larger than {MAX_FORM_BYTES} bytes.")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(
            415, "Send the form as application/x-www-form-urlencoded (the page's own form)."
        )
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise HTTPException(400, "The form is not UTF-8 text.") from None
    return Form(parse_qs(text, keep_blank_values=True))


async def write_form(request: Request, *, login: bool = True) -> Form:
    """The form of a write, after checking its session, login and CSRF token (else 403)."""
    ui = state(request)
    session = session_of(request)
    form = await read_form(request)
    if request.state.new_session:
        raise HTTPException(403, "No session: open the page first, then send its form.")
    if not ui.sessions.csrf_ok(session, form.get("csrf_token")):
        raise HTTPException(403, "The form's CSRF token is missing or wrong: reload the page.")
    if login and session.user is None:
        raise HTTPException(403, "Log in to change anything; reading needs no login.")
    return form
