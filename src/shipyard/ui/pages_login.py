"""``/login`` and ``/logout``: a login draws a new session (and so a new CSRF token)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from shipyard.ui.web import render, state, write_form

router = APIRouter()


def _safe_next(target: str) -> str:
    """Only a path on this server: never send a user on to another site after login."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/models"


@router.get("/login")
def login_page(request: Request, next: str = "/models") -> Response:
    return render(request, "login.html", next=_safe_next(next), failed=False)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await write_form(request, login=False)
    ui = state(request)
    user, password = form.get("user"), form.get("password")
    target = _safe_next(form.get("next", "/models"))
    if not user or not await run_in_threadpool(ui.users.check, user, password):
        return render(request, "login.html", 403, next=target, failed=True)
    request.state.session = ui.sessions.new(user)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await write_form(request, login=False)
    request.state.session = state(request).sessions.new()
    return RedirectResponse("/models", status_code=303)
