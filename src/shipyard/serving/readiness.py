"""Readiness: what ``/ready`` (and ``/v2/health/ready``) answer.

A server is ready once its model is loaded and warmed up in every worker
(:meth:`ModelRuntime.require_all_ready`) *and*, when a model it answers with is
feature-backed, its online store answers: without the store every prediction
of such a model is a 503, and a readiness probe that said 200 would keep a load
balancer (a Kubernetes Service, nginx, Compose) sending traffic to a replica
that cannot answer. A model without features never touches the store, so it is
ready whatever the store does.

Probes come often (every few seconds, from each balancer), so the store check
is cheap (:class:`OnlineStoreHealth`):

- the outcome of the server's last real online read counts for ``max_age``
  seconds (1 s): a replica taking traffic is never pinged;
- otherwise one ping (Redis ``PING``, SQLite ``SELECT 1``) answers every probe
  that arrives while it is out, and its outcome counts for ``max_age`` too.

Predictions never wait for a ping; a read only records its outcome.

Example:
    >>> readiness = Readiness(runtime, metrics, OnlineStoreHealth(join))  # doctest: +SKIP
    >>> served = await readiness.require()                                 # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import anyio

from shipyard.features.online import OnlineStoreUnavailable
from shipyard.serving.errors import OnlineStoreNotReadyError
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.runtime import ModelRuntime, ServedModel

__all__ = ["OnlineStoreHealth", "Readiness", "StoreProbe"]

logger = logging.getLogger("shipyard.serving")

DEFAULT_MAX_AGE = 1.0  # seconds an outcome (a read's or a ping's) stands for the store


class StoreProbe(Protocol):
    """The online store as the readiness check sees it: a name and a ping."""

    @property
    def inline(self) -> bool:
        """A local store (SQLite) is pinged on the event loop, a networked one in a thread."""
        ...

    @property
    def target(self) -> str:
        """The store's name for messages, without credentials."""
        ...

    def ping(self) -> None:
        """Raise :class:`OnlineStoreUnavailable` unless the store answers."""
        ...


class OnlineStoreHealth:
    """Whether the online store answers, from real reads and, when there are none, a ping.

    ``on_change(target, up)`` is told each time the answer flips (a gauge).
    """

    def __init__(
        self,
        probe: StoreProbe,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.probe = probe
        self.max_age = max_age
        self.clock = clock
        self.on_change = on_change
        # (when, why it is down or None): one tuple, assigned whole, so a read's thread
        # and the event loop never see half of an update.
        self._known: tuple[float, str | None] | None = None
        self._ping: asyncio.Task[str | None] | None = None
        self.pings = 0  # pings sent, for tests and the curious

    def saw(self, error: BaseException | None) -> None:
        """A real online read's outcome: None (the store answered) or the
        :class:`OnlineStoreUnavailable` it raised.

        Called after every read, from the read's thread: a clock read and one assignment.
        """
        self._record(None if error is None else str(error))

    def _record(self, problem: str | None) -> None:
        before = self._known
        self._known = (self.clock(), problem)
        if self.on_change is not None and (
            before is None or (before[1] is None) != (problem is None)
        ):
            self.on_change(self.target, problem is None)

    async def problem(self) -> str | None:
        """Why the store cannot be used now (None: it answers), at most ``max_age`` old."""
        known = self._known
        if known is not None and self.clock() - known[0] < self.max_age:
            return known[1]
        if self._ping is None:
            self._ping = asyncio.ensure_future(self._run_ping())
        # Shielded: a probe that gives up (its client went away) leaves the ping running
        # for the others that wait on it.
        return await asyncio.shield(self._ping)

    async def _run_ping(self) -> str | None:
        self.pings += 1
        try:
            if self.probe.inline:
                self.probe.ping()
            else:
                await anyio.to_thread.run_sync(self.probe.ping)
            problem = None
        except OnlineStoreUnavailable as exc:
            problem = str(exc)
        except Exception as exc:  # never a 500 from a probe, and no text that may hold a URL
            logger.exception("The online store check failed")
            problem = (
                f"The online store {self.target} could not be checked "
                f"({type(exc).__name__}); the server log has the details."
            )
        finally:
            self._ping = None
        self._record(problem)
        return problem

    @property
    def target(self) -> str:
        """The store's name (no credentials), for messages and the gauge's label."""
        try:
            return self.probe.target
        except Exception:  # the store's URL did not even open: named by the error instead
            return "(unopened)"


class Readiness:
    """``/ready``: the model loaded and warm everywhere, and a feature-backed model's
    online store answering; raises the 503's error otherwise."""

    def __init__(
        self, runtime: ModelRuntime, metrics: ServingMetrics, online: OnlineStoreHealth | None
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.online = online

    async def require(self) -> ServedModel:
        """The served model (the primary, for a deployment), or the 503's error."""
        served = self.runtime.require_all_ready()
        if self.online is None:
            return served
        backed = [m for m in self.runtime.answering() if m.model.manifest.features is not None]
        if not backed:
            return served
        problem = await self.online.problem()
        # What /ready answers, also for Prometheus (a swap sets the gauge to 1 whatever the
        # store does; the next probe puts it right).
        self.metrics.model_ready.set(0 if problem else 1)
        if problem is not None:
            names = ", ".join(str(m.ref) for m in backed)
            verb = "fetches" if len(backed) == 1 else "fetch"
            raise OnlineStoreNotReadyError(
                f"Not ready: {names} {verb} its features from the online store, which does "
                f"not answer, so every prediction would be a 503. {problem}",
                online_store=self.online.target,
            )
        return served
