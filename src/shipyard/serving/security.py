"""Guards of the HTTP edge: admin token, API keys, body size, per-request timeout.

- Admin routes need ``Authorization: Bearer <SHIPYARD_ADMIN_TOKEN>``; with no
  token configured they answer 403 saying how to enable them.
- Prediction routes need an API key (``X-API-Key: <key>`` or
  ``Authorization: Bearer <key>``) when ``api_keys`` is configured; else 401.
- Bodies larger than the limit (default 1 MiB) answer 413: the declared
  ``Content-Length`` is checked before reading, and the bytes actually received
  are counted too, so a chunked upload cannot slip past.
- A request that runs longer than the timeout answers 504; the model call it
  was waiting for is abandoned, not waited for.

Secrets are compared in constant time.

Example:
    >>> guard = AdminGuard(None)
    >>> guard.enabled
    False
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from pydantic import SecretStr
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.serving.errors import (
    ForbiddenError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnauthorizedError,
    error_response,
)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
logger = logging.getLogger("shipyard.serving")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _matches(candidate: str, secrets: list[bytes]) -> bool:
    given = candidate.encode()
    # Compare against every key so the time taken does not reveal which one matched.
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given, secret)
    return found


class AdminGuard:
    """FastAPI dependency protecting admin routes with the admin bearer token."""

    def __init__(self, token: SecretStr | None) -> None:
        value = token.get_secret_value() if token is not None else ""
        self._secrets = [value.encode()] if value else []

    @property
    def enabled(self) -> bool:
        return bool(self._secrets)

    async def __call__(self, request: Request) -> None:
        if not self._secrets:
            raise ForbiddenError(
                "Admin routes are disabled because no admin token is configured. Set "
                "SHIPYARD_ADMIN_TOKEN (or admin_token in shipyard.toml), restart the server, "
                "and send 'Authorization: Bearer <token>'."
            )
        token = _bearer(request)
        if token is None:
            raise UnauthorizedError(
                "Admin routes need 'Authorization: Bearer <SHIPYARD_ADMIN_TOKEN>'."
            )
        if not _matches(token, self._secrets):
            raise UnauthorizedError("The admin token is not valid.")


class ApiKeyGuard:
    """FastAPI dependency requiring one of the configured API keys on prediction routes."""

    def __init__(self, keys: list[str]) -> None:
        self._secrets = [k.encode() for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._secrets)

    async def __call__(self, request: Request) -> None:
        if not self._secrets:
            return
        key = request.headers.get("x-api-key") or _bearer(request)
        if key is None:
            raise UnauthorizedError(
                "This server needs an API key: send it as 'X-API-Key: <key>' "
                "(or 'Authorization: Bearer <key>')."
            )
        if not _matches(key, self._secrets):
            raise UnauthorizedError("The API key is not valid.")


class BodyLimitMiddleware:
    """Answers 413 to bodies over ``max_bytes``, declared or actually received."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | None) -> PayloadTooLargeError:
        got = f" ({size} bytes)" if size is not None else ""
        return PayloadTooLargeError(
            f"The request body is too large{got}; this server accepts at most "
            f"{self.max_bytes} bytes. Split the batch into smaller requests, or start the "
            "server with a larger --max-body-bytes."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await error_response(self._too_large(declared), scope)(scope, receive, send)
                    return
                break
        received = 0
        limit = self.max_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read; the error handlers answer 413.
                    raise self._too_large(None)
            return message

        await self.app(scope, counting_receive, send)


class TimeoutMiddleware:
    """Answers 504 when a request takes longer than ``seconds`` (admin routes exempt).

    Admin routes are exempt because a reload legitimately loads a whole model.
    If the answer had already started when time ran out, nothing can be changed
    any more and the request is left to finish.
    """

    def __init__(
        self, app: ASGIApp, seconds: float, *, exempt_prefixes: tuple[str, ...] = ("/admin",)
    ) -> None:
        self.app = app
        self.seconds = seconds
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.seconds) as deadline:
                await self.app(scope, receive, send_tracking)
        except TimeoutError:
            if not deadline.expired():
                raise  # a timeout of the app's own, not ours
            if started:  # too late for a 504: the status line is already out
                logger.warning(
                    "%s %s ran past the %g s timeout while sending its answer; cut short",
                    scope["method"],
                    scope["path"],
                    self.seconds,
                )
                return
            error = RequestTimeoutError(
                f"The request took longer than the server's {self.seconds:g} s timeout. "
                "Send fewer rows per request, or raise --timeout."
            )
            await error_response(error, scope)(scope, receive, send)
