"""Connection limits: a deadline for request headers, idle keep-alive, a connection cap.

uvicorn times out idle keep-alive connections, but nothing covers a request
whose headers never finish: its keep-alive timer is cancelled by the first
byte, so a client that sends ``GET / HTTP/1.1\\r\\nHost: x\\r\\n`` and then
trickles (or nothing) holds the connection, and its file descriptor, forever.
A few hundred such clients exhaust a server (the "slowloris" attack).

Here the HTTP protocol classes get a *header deadline*: from the moment a
connection opens, and again from the first byte of each later request, the
request line and headers must be complete within ``header_timeout`` seconds,
or the connection is closed. Once the headers are in, the per-request timeout
of the app (``--timeout``) covers the body and the answer.

With them, :class:`ServerConfig` sets uvicorn's own limits: the keep-alive
timeout (idle time between requests) and ``limit_concurrency`` (connections
and in-flight requests per worker beyond which new requests answer 503).

Example:
    >>> config = ServerConfig(app, header_timeout=10.0, timeout_keep_alive=5)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("shipyard.serving")

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 1024


class _HeaderDeadline:
    """Closes a connection whose request headers are not complete in time.

    Mixed into uvicorn's HTTP protocols; reads ``config.header_timeout``. A new
    request is recognised by uvicorn starting a new request/response cycle,
    which it does once the headers are parsed.
    """

    config: Any
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:  # a request's headers are complete
            self._disarm()
        elif self._header_deadline is None and (before is None or before.response_complete):
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        timeout = getattr(self.config, "header_timeout", None)
        if timeout is not None and not self.transport.is_closing():
            self._header_deadline = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            logger.info(
                "Closed a connection from %s: its request headers did not arrive within %g s.",
                self.transport.get_extra_info("peername"),
                self.config.header_timeout,
            )
            self.transport.close()


class H11DeadlineProtocol(_HeaderDeadline, H11Protocol):
    """uvicorn's pure-Python HTTP/1.1 protocol with a header deadline."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional (uvicorn[standard] brings it)
    HTTP_PROTOCOL: type[asyncio.Protocol] = H11DeadlineProtocol
else:

    class HttpToolsDeadlineProtocol(_HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools HTTP/1.1 protocol (the faster one) with a header deadline."""

    HTTP_PROTOCOL = HttpToolsDeadlineProtocol


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus ``header_timeout`` (seconds; None: no deadline).

    Module-level and picklable, so it also travels to spawned workers.
    """

    def __init__(
        self, app: Any, *, header_timeout: float | None = DEFAULT_HEADER_TIMEOUT, **kwargs: Any
    ) -> None:
        kwargs.setdefault("http", HTTP_PROTOCOL)
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout


__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_KEEP_ALIVE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "HTTP_PROTOCOL",
    "ServerConfig",
]
