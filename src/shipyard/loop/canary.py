"""The canary step's boundary: start a canary, then ask how it is going.

A canary takes minutes to hours under a progressive policy, far longer than
one ``shipyard loop tick``, so the loop starts it and polls it on later ticks.
:class:`CanaryRunner` is that two-method interface;
:class:`RolloutCanaryRunner` implements it with the deployments of
:mod:`shipyard.rollout` (whose controller advances or rolls back the canary
by its guards, in the servers and in each poll); tests may pass any object
with the same two methods.

>>> runner = RolloutCanaryRunner(client)                                # doctest: +SKIP
>>> request = CanaryRequest("iris", candidate=4, champion=3, deployment="iris")
>>> runner.start(request)                                               # doctest: +SKIP
>>> runner.poll(request)         # None while the canary still runs      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import NotFoundError

if TYPE_CHECKING:
    from shipyard.loop.services import LoopServices


@dataclass(frozen=True)
class CanaryRequest:
    """Canary ``model:candidate`` beside ``model:champion`` in ``deployment``."""

    model: str
    candidate: int
    champion: int
    deployment: str
    policy: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    #: The alias the champion serves under; a deployment created for the canary follows it.
    alias: str | None = None


@dataclass(frozen=True)
class CanaryOutcome:
    """How a finished canary ended: ``promoted`` (now the primary) or rolled back, and why."""

    promoted: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class CanaryRunner(Protocol):
    """Starts a canary and reports its outcome once it has one."""

    def start(self, request: CanaryRequest) -> dict[str, Any]:
        """Put the candidate on canary traffic; returns facts for the loop history."""
        ...

    def poll(self, request: CanaryRequest) -> CanaryOutcome | None:
        """The outcome once the canary was promoted or rolled back; None while it runs."""
        ...

    def unserved(self, request: CanaryRequest) -> str | None:
        """Why the canary gets no traffic (no server serves the deployment), or None."""
        ...


class RolloutCanaryRunner:
    """Canary through :class:`shipyard.rollout.service.Deployments` and its rollout policy.

    The deployment is created (champion as primary, following the loop's
    alias, so its promotion moves the alias) if it does not exist. A
    canary ends promoted when the candidate became the primary, and rolled
    back when the canary left while the primary stayed; the reason is read
    from the deployment's change history.
    """

    def __init__(self, client: LoopServices, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.client = client
        self.clock = clock

    def _deployments(self) -> Any:

        return self.client.deployments.acting_as(self.client.settings.actor, clock=self.clock)

    def start(self, request: CanaryRequest) -> dict[str, Any]:
        from shipyard.rollout.records import RolloutPolicy

        deployments = self._deployments()
        policy = RolloutPolicy.from_dict(request.policy)
        created = False
        try:
            current = deployments.get(request.deployment)
        except NotFoundError:
            current = deployments.create(
                request.deployment,
                request.model,
                request.champion,
                reason=request.reason,
                follows=request.alias,
            )
            created = True
        if current.model != request.model:
            raise NotFoundError(
                f"Deployment {request.deployment!r} serves model {current.model!r}, not "
                f"{request.model!r}; set canary.deployment in the loop config."
            )
        d = deployments.set_canary(
            request.deployment, request.candidate, policy=policy, reason=request.reason
        )
        return {
            "deployment": d.name,
            "created": created,
            "primary": d.primary,
            "canary": d.canary,
            "weight": d.canary_weight,
            "policy": policy.to_dict(),
            "revision": d.revision,
        }

    def poll(self, request: CanaryRequest) -> CanaryOutcome | None:
        from shipyard.rollout.controller import RolloutController, log_accuracy

        deployments = self._deployments()
        # Drive the policy once ourselves: with no server watching (a cron tick), the
        # canary would otherwise never advance. Servers doing the same is safe: each
        # change is a compare-and-set, and the loser simply holds.
        RolloutController(
            deployments, clock=self.clock, accuracy=log_accuracy(self.client.prediction_log)
        ).evaluate(request.deployment)
        d = deployments.get(request.deployment)
        if d.canary == request.candidate:
            return None
        facts = {"deployment": d.name, "primary": d.primary, "revision": d.revision}
        last = next(iter(deployments.changes(request.deployment, limit=1)), None)
        why = getattr(last, "reason", None) or getattr(last, "action", None) or "no reason recorded"
        if d.primary == request.candidate:
            return CanaryOutcome(True, f"{request.model}:{request.candidate} is the primary", facts)
        return CanaryOutcome(
            False, f"canary of {request.model}:{request.candidate} ended: {why}", facts
        )

    def unserved(self, request: CanaryRequest) -> str | None:
        return self._deployments().unserved(request.deployment)  # type: ignore[no-any-return]


__all__ = ["CanaryOutcome", "CanaryRequest", "CanaryRunner", "RolloutCanaryRunner"]
