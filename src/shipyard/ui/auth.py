"""Who may change things through the web UI: logins, the session cookie, CSRF tokens.

Reading needs no login. Every write is a POST that carries the session cookie
(signed, HttpOnly, SameSite=Strict) of a logged-in user and the CSRF token of
that session; anything else is refused with 403 before the route runs.

- Users: ``SHIPYARD_UI_USERS``, a JSON map of user name to an argon2 hash
  (``shipyard ui --hash-password`` makes one), or the admin token
  (``SHIPYARD_ADMIN_TOKEN``) as the password of the user ``admin``.
- The session cookie holds a random session id and the user name, signed
  with ``SHIPYARD_UI_SECRET`` (or a key drawn at start: sessions then end
  when the server restarts). A login draws a new session id.
- The CSRF token is an HMAC of the session id: a page from this server has
  it in every form; another site can neither read it nor the cookie.

>>> users = Users({}, admin_token=None)
>>> users.enabled
False
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["COOKIE", "Session", "Sessions", "Users", "hash_password"]

COOKIE = "shipyard_ui"
#: A session lasts a working day; log in again after.
SESSION_SECONDS = 12 * 3600
ADMIN_USER = "admin"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for ``SHIPYARD_UI_USERS``."""
    return _hasher.hash(password)


class Users:
    """Checks a user name and password against the configured logins."""

    def __init__(self, hashes: dict[str, str], *, admin_token: str | None) -> None:
        self._hashes = dict(hashes)
        self._token = admin_token or None

    @property
    def enabled(self) -> bool:
        """Whether anyone can log in at all (else the UI is read-only for everyone)."""
        return bool(self._hashes) or self._token is not None

    def check(self, user: str, password: str) -> bool:
        stored = self._hashes.get(user)
        if stored is not None:
            try:
                return _hasher.verify(stored, password)
            except (VerificationError, InvalidHashError):
                return False
        if user == ADMIN_USER and self._token is not None:
            return hmac.compare_digest(password.encode(), self._token.encode())
        # Spend the time of a hash check anyway, so a wrong name and a wrong password
        # cannot be told apart by how long the answer takes.
        _hasher.hash(password)
        return False


@dataclass(frozen=True)
class Session:
    """One browser's session: its id and, once logged in, who."""

    sid: str
    user: str | None = None


class Sessions:
    """Signs and reads the session cookie; makes and checks CSRF tokens."""

    def __init__(self, secret: str | None) -> None:
        self._secret = (secret or secrets.token_urlsafe(32)).encode()
        self._serializer = URLSafeTimedSerializer(self._secret, salt="shipyard-ui-session")

    def new(self, user: str | None = None) -> Session:
        return Session(secrets.token_urlsafe(18), user)

    def dump(self, session: Session) -> str:
        return self._serializer.dumps({"sid": session.sid, "user": session.user})

    def load(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when absent, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        user = data.get("user")
        return Session(data["sid"], user if isinstance(user, str) else None)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._secret, f"csrf:{session.sid}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))
