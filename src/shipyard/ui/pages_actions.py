"""The UI's changes: each a POST behind login and CSRF, confirmed, with a reason.

The first POST of an action changes nothing: it answers with a confirmation
page saying exactly what will happen. Only its "Confirm" (the same fields and
``confirmed=yes``) acts, through the same service functions as the CLI, so the
same rules hold (a failed gate or a missing approval refuses ``production``
unless forced with a reason), and every change is audit-logged with the
logged-in user and the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from shipyard.registry.refs import parse_ref
from shipyard.ui.web import Form, UiState, render, session_of, state, write_form

router = APIRouter()


@dataclass(frozen=True)
class Action:
    """What a confirmed action does and where the user lands after it."""

    describe: Callable[[Form], str]
    perform: Callable[[UiState, str, Form], str]  # returns the page to go to


def _version(form: Form) -> int:
    text = form.require("version", "the version number")
    if not text.isdigit() or int(text) < 1:
        raise HTTPException(
            400, f"The form field 'version' must be a version number, got {text!r}."
        )
    return int(text)


def _move_alias(ui: UiState, user: str, form: Form) -> str:
    model, alias = form.require("model", "the model"), form.require("alias", "the alias")
    version = _version(form)
    ui.client.registry.acting_as(user).set_alias(
        model, alias, version, reason=form.get("reason"), force=form.get("force") == "yes"
    )
    return f"/models/{model}"


def _delete_alias(ui: UiState, user: str, form: Form) -> str:
    model, alias = form.require("model", "the model"), form.require("alias", "the alias")
    ui.client.registry.acting_as(user).delete_alias(model, alias, reason=form.get("reason"))
    return f"/models/{model}"


def _decide(ui: UiState, user: str, form: Form) -> str:
    from shipyard.validation.approvals import approve, reject

    version = ui.client.registry.resolve(form.require("ref", "the version (iris:3)"))
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise HTTPException(400, "The form field 'decision' must be 'approve' or 'reject'.")
    decide = approve if decision == "approve" else reject
    decide(
        ui.client.validation,
        version.model,
        version.version,
        actor=user,
        comment=form.get("reason"),
    )
    return f"/models/{version.model}/versions/{version.version}"


def _archive(ui: UiState, user: str, form: Form) -> str:
    ref = form.require("ref", "a model name or NAME:VERSION")
    ui.client.registry.acting_as(user).archive(
        ref, restore=form.get("restore") == "yes", reason=form.get("reason")
    )
    parsed = parse_ref(ref)
    if parsed.version is not None:
        return f"/models/{parsed.name}/versions/{parsed.version}"
    return f"/models/{parsed.name}"


DEPLOYMENT_OPS = ("promote", "rollback", "kill", "resume")


def _deployment(ui: UiState, user: str, form: Form) -> str:
    name, op = form.require("deployment", "the deployment"), form.get("op")
    deployments = ui.client.deployments.acting_as(user)
    reason = form.get("reason")
    if op == "promote":
        deployments.promote(name, reason=reason, force=form.get("force") == "yes")
    elif op == "rollback":
        deployments.rollback(name, reason=reason)
    elif op == "kill":
        deployments.kill(name, reason=reason)
    elif op == "resume":
        deployments.resume(name, reason=reason)
    else:
        raise HTTPException(400, f"The form field 'op' must be one of {', '.join(DEPLOYMENT_OPS)}.")
    return f"/deployments/{name}"


def _trigger_loop(ui: UiState, user: str, form: Form) -> str:
    from shipyard.loop.config import load_config
    from shipyard.loop.controller import LoopController

    model = form.require("model", "the model to retrain")
    if ui.loop_config is None:
        raise HTTPException(
            409,
            "No loop config: start the UI with `shipyard ui --loop-config loop.yaml` "
            "(or SHIPYARD_LOOP_CONFIG) to trigger loop runs from it.",
        )
    config = load_config(ui.loop_config)
    if model not in {c.model for c in config}:
        known = ", ".join(sorted(c.model for c in config)) or "none"
        raise HTTPException(400, f"The loop config has no model {model!r} (models: {known}).")
    reason = form.get("reason")
    ui.client.audit.record(
        actor=user, action="trigger_loop", model=model, subject=model, reason=reason
    )
    controller = LoopController(ui.client, config, source=ui.loop_config)
    # A run retrains, gates and canaries: minutes. It goes on in the background and
    # the loop page shows it from its first step.
    threading.Thread(
        target=controller.trigger,
        args=(model, f"{reason} (from the web UI by {user})"),
        name=f"ui-loop-{model}",
        daemon=True,
    ).start()
    return f"/loop?model={model}"


def _say(form: Form, text: str) -> str:
    reason = form.get("reason")
    return f"{text}, because: {reason}" if reason else text


ACTIONS: dict[str, Action] = {
    "move-alias": Action(
        lambda f: _say(
            f,
            f"Point {f.get('model')}@{f.get('alias')} at version {f.get('version')}"
            + (" overriding failed gates or missing approvals" if f.get("force") == "yes" else ""),
        ),
        _move_alias,
    ),
    "delete-alias": Action(
        lambda f: _say(f, f"Delete the alias {f.get('model')}@{f.get('alias')}"), _delete_alias
    ),
    "decide": Action(
        lambda f: _say(f, f"{f.get('decision', '?').capitalize()} {f.get('ref')}"), _decide
    ),
    "archive": Action(
        lambda f: _say(
            f, f"{'Restore' if f.get('restore') == 'yes' else 'Archive'} {f.get('ref')}"
        ),
        _archive,
    ),
    "deployment": Action(
        lambda f: _say(
            f,
            f"{f.get('op', '?').capitalize()} deployment {f.get('deployment')}"
            + (" overriding gates or approvals" if f.get("force") == "yes" else ""),
        ),
        _deployment,
    ),
    "trigger-loop": Action(
        lambda f: _say(f, f"Start a loop run (retrain, gate, canary) of {f.get('model')} now"),
        _trigger_loop,
    ),
}


@router.post("/actions/{kind}")
async def act(request: Request, kind: str) -> Response:
    form = await write_form(request)
    action = ACTIONS.get(kind)
    if action is None:
        raise HTTPException(404, f"No action {kind!r}; actions: {', '.join(ACTIONS)}.")
    form.require("reason", "a reason (kept in the audit log)")
    if form.get("confirmed") != "yes":
        hidden = [
            (name, value)
            for name, values in form.fields.items()
            if name not in ("csrf_token", "confirmed")
            for value in values
        ]
        return render(
            request, "confirm.html", kind=kind, summary=action.describe(form), hidden=hidden
        )
    user = session_of(request).user
    assert user is not None  # write_form checked the login
    target = await run_in_threadpool(action.perform, state(request), user, form)
    return RedirectResponse(target, status_code=303)
