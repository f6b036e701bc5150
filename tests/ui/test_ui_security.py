"""Writes need a session, a login and the session's CSRF token; reads need nothing.

Through the real app over HTTP (FastAPI's test client), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ui_seed import PASSWORD

from shipyard.ui.app import create_app
from shipyard.ui.auth import COOKIE, Sessions, Users, hash_password

MOVE = {"model": "iris", "alias": "champion", "version": "2", "reason": "r", "confirmed": "yes"}


@pytest.fixture
def http(seeded: Any) -> Iterator[TestClient]:
    client, _ = seeded
    app = create_app(client, users=Users({"ann": hash_password(PASSWORD)}, admin_token="tok-123"))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def _csrf(http: TestClient, path: str = "/models/iris") -> str:
    page = http.get(path)
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found is not None, "every page's forms carry the CSRF token"
    return found.group(1)


def _login(http: TestClient, user: str = "ann", password: str = PASSWORD) -> str:
    token = _csrf(http, "/login")
    answer = http.post(
        "/login",
        data={"csrf_token": token, "user": user, "password": password, "next": "/models/iris"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return _csrf(http)


def _alias(seeded: Any) -> dict[str, int]:
    return seeded[0].models.get_model("iris").aliases


def test_every_page_reads_without_a_login(http: TestClient) -> None:
    for path in ("/models", "/runs", "/deployments", "/monitoring", "/loop", "/audit"):
        assert http.get(path).status_code == 200, path


def test_the_session_cookie_is_signed_httponly_and_strict(http: TestClient) -> None:
    answer = http.get("/models")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_a_write_without_session_login_or_csrf_is_refused(http: TestClient, seeded: Any) -> None:
    before = _alias(seeded)
    # No session cookie at all.
    fresh = TestClient(http.app, base_url="http://127.0.0.1")
    answer = fresh.post("/actions/move-alias", data={**MOVE, "csrf_token": "x"})
    assert answer.status_code == 403 and "No session" in answer.text
    # A session, but no CSRF token.
    token = _csrf(http, "/login")
    answer = http.post("/actions/move-alias", data=MOVE)
    assert answer.status_code == 403 and "CSRF" in answer.text
    # A session and its token, but nobody logged in.
    answer = http.post("/actions/move-alias", data={**MOVE, "csrf_token": token})
    assert answer.status_code == 403 and "Log in" in answer.text
    # Logged in, with a wrong token (or the one of the session before the login).
    _login(http)
    answer = http.post("/actions/move-alias", data={**MOVE, "csrf_token": token})
    assert answer.status_code == 403 and "CSRF" in answer.text
    # No write is reachable by GET.
    assert http.get("/actions/move-alias", params=MOVE).status_code == 405
    # A cookie signed with another key is no session.
    forged = Sessions("another key").dump(Sessions("another key").new("ann"))
    stranger = TestClient(http.app, base_url="http://127.0.0.1", cookies={COOKIE: forged})
    answer = stranger.post("/actions/move-alias", data={**MOVE, "csrf_token": token})
    assert answer.status_code == 403
    assert _alias(seeded) == before


def test_a_confirmed_write_acts_and_is_audit_logged_as_the_user(
    http: TestClient, seeded: Any
) -> None:
    token = _login(http)
    unconfirmed = {k: v for k, v in MOVE.items() if k != "confirmed"}
    answer = http.post("/actions/move-alias", data={**unconfirmed, "csrf_token": token})
    assert answer.status_code == 200 and 'id="confirm"' in answer.text
    assert "champion" not in _alias(seeded)  # the first POST only asks
    no_reason = {**MOVE, "reason": "", "csrf_token": token}
    answer = http.post("/actions/move-alias", data=no_reason)
    assert answer.status_code == 400 and "reason" in answer.text
    answer = http.post(
        "/actions/move-alias", data={**MOVE, "csrf_token": token}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert _alias(seeded)["champion"] == 2
    entry = seeded[0].audit.log(model="iris", limit=1)[0]
    assert (entry.actor, entry.action, entry.subject, entry.reason) == (
        "ann",
        "set_alias",
        "iris@champion",
        "r",
    )


def test_the_admin_token_logs_in_as_admin(http: TestClient, seeded: Any) -> None:
    token = _login(http, "admin", "tok-123")
    answer = http.post(
        "/actions/archive",
        data={"ref": "iris:1", "reason": "old", "confirmed": "yes", "csrf_token": token},
    )
    # Version 1 holds production: refused with the CLI's message, nothing changed.
    assert answer.status_code == 409 and "holds alias" in answer.text
    answer = http.post(
        "/actions/deployment",
        data={
            "deployment": "web",
            "op": "kill",
            "reason": "incident",
            "confirmed": "yes",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert seeded[0].deployments.get("web").killed
    assert seeded[0].audit.log(limit=1)[0].actor == "admin"


def test_wrong_logins_and_outside_redirects_are_refused(http: TestClient) -> None:
    token = _csrf(http, "/login")
    for user, password in (("ann", "nope"), ("bob", PASSWORD), ("admin", "nope")):
        answer = http.post("/login", data={"csrf_token": token, "user": user, "password": password})
        assert answer.status_code == 403 and "Wrong user name or password" in answer.text
    answer = http.post(
        "/login",
        data={"csrf_token": token, "user": "ann", "password": PASSWORD, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/models"


def test_bad_input_is_a_clear_4xx(http: TestClient) -> None:
    cases = {
        "/runs?filter=metrics.accuracy%20~%201": "Invalid filter at '~ 1'",
        "/runs?filter=accuracy%20%3E%200.9": "expected an entity starting with metrics.",
        "/runs?metric=accuracy%20%3E%200.9": "one filter now, in MLflow's syntax",
        "/runs?tag=team%3Dred": "not metric= or tag=",
        "/runs?status=DONE": "not one of",
        "/runs?sort=colour": "Cannot sort runs",
        "/monitoring/iris?window=2h": "not one of",
        "/models/nope": "No model named 'nope'",
        "/models/iris/versions/9": "has no version 9",
        "/monitoring/iris?until=yesterday": "not an ISO time",
    }
    for path, message in cases.items():
        answer = http.get(path)
        assert 400 <= answer.status_code < 500, (path, answer.status_code)
        assert message in html.unescape(answer.text), (path, answer.text[:500])
