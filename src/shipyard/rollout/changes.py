"""One ``shipyard deploy NAME ...`` request turned into the right deployment change.

The CLI (and any client) describes what it wants in a :class:`DeployRequest`;
:func:`apply_deploy` decides what that means for the deployment as it stands:

- no deployment yet: create it with ``model`` as its primary (a canary or
  progressive rollout needs a primary first);
- ``split``: set A/B weights;
- ``model`` with ``canary`` or ``steps``: a canary, fixed or progressive;
- ``model`` alone: switch all traffic to it;
- then ``shadows`` (or ``no_shadows``) replace the shadow list.

A progressive rollout with neither ``step_seconds`` nor ``step_requests``
advances every :data:`DEFAULT_STEP_SECONDS`.

Example:
    >>> deployments = client.deployments                                   # doctest: +SKIP
    >>> apply_deploy(deployments, client.registry.resolve, "web",
    ...              DeployRequest(model="iris:4", canary=10)).canary      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.registry.refs import RESERVED_ALIAS, parse_ref
from shipyard.rollout.records import Deployment, RolloutPolicy
from shipyard.rollout.service import Deployments
from shipyard.store.records import ModelVersion
from shipyard.store.rollout_store import DeploymentNotFoundError

#: A progressive rollout's step length when the request names no step condition.
DEFAULT_STEP_SECONDS = 300.0

#: Resolves a model reference (``iris:4``, ``iris@staging``) to its version.
Resolver = Callable[[str], ModelVersion]


@dataclass(frozen=True)
class DeployRequest:
    """What ``shipyard deploy NAME`` was asked to do (every field optional).

    ``model`` is a reference; ``shadows`` are references too. ``steps`` makes
    the canary progressive, guarded by ``min_requests``, ``max_error_rate``,
    ``max_p99_seconds`` and ``max_accuracy_drop``. ``split`` maps versions to
    A/B weights adding up to 100.
    """

    model: str | None = None
    canary: float | None = None
    steps: tuple[float, ...] | None = None
    step_seconds: float | None = None
    step_requests: int | None = None
    min_requests: int = 20
    max_error_rate: float | None = 0.05
    max_p99_seconds: float | None = None
    max_accuracy_drop: float | None = None
    split: Mapping[int, float] | None = None
    sticky_header: str | None = None
    shadows: tuple[str, ...] = ()
    no_shadows: bool = False
    force: bool = False
    reason: str | None = None

    def policy(self) -> RolloutPolicy | None:
        """The progressive rollout policy, when ``steps`` were given."""
        if self.steps is None:
            return None
        timed = self.step_seconds is not None or self.step_requests is not None
        return RolloutPolicy(
            steps=self.steps,
            step_seconds=self.step_seconds if timed else DEFAULT_STEP_SECONDS,
            step_requests=self.step_requests,
            min_requests=self.min_requests,
            max_error_rate=self.max_error_rate,
            max_p99_seconds=self.max_p99_seconds,
            max_accuracy_drop=self.max_accuracy_drop,
        )


def apply_deploy(
    deployments: Deployments, resolve: Resolver, name: str, request: DeployRequest
) -> Deployment:
    """Create deployment ``name`` or change its traffic as ``request`` asks; return it.

    Each change is one transaction of :class:`~shipyard.rollout.service.Deployments`
    (gates, approvals and the audit log apply as there).
    """
    if request.steps is not None and request.canary is not None:
        raise InvalidInputError("Give --canary or --steps, not both (--steps starts at its first).")
    try:
        current: Deployment | None = deployments.get(name)
    except DeploymentNotFoundError:
        current = None
    if current is None:
        current = _create(deployments, resolve, name, request)
    elif request.split is not None:
        current = deployments.set_split(
            name,
            dict(request.split),
            sticky_header=request.sticky_header,
            force=request.force,
            reason=request.reason,
        )
    elif request.model is not None:
        version = _version(resolve, request.model, current.model)
        if request.canary is not None or request.steps is not None:
            current = deployments.set_canary(
                name,
                version,
                request.canary,
                policy=request.policy(),
                force=request.force,
                reason=request.reason,
            )
        else:
            current = deployments.set_primary(
                name, version, force=request.force, reason=request.reason
            )
    if request.shadows or request.no_shadows:
        versions = (
            []
            if request.no_shadows
            else [_version(resolve, ref, current.model) for ref in request.shadows]
        )
        current = deployments.set_shadows(name, versions, reason=request.reason)
    return current


def _create(
    deployments: Deployments, resolve: Resolver, name: str, request: DeployRequest
) -> Deployment:
    if request.model is None:
        raise NotFoundError(
            f"No deployment named {name!r}. Create it with `shipyard deploy {name} --model "
            "MODEL:VERSION` (that version becomes its primary)."
        )
    if request.canary is not None or request.steps is not None:
        raise InvalidInputError(
            f"Deployment {name!r} does not exist yet; create it with its primary first "
            f"(`shipyard deploy {name} --model MODEL:VERSION`), then add the canary."
        )
    version = resolve(request.model)
    return deployments.create(
        name,
        version.model,
        version.version,
        force=request.force,
        reason=request.reason,
        follows=followed_alias(request.model),
    )


def _version(resolve: Resolver, ref: str, model: str) -> int:
    version = resolve(ref)
    if version.model != model:
        raise InvalidInputError(
            f"{version.ref} is a version of {version.model!r}, but this deployment serves "
            f"{model!r}; a deployment's variants are versions of one model."
        )
    return version.version


def followed_alias(ref: str) -> str | None:
    """The alias a reference names (``iris`` -> production), if it is one that can move.

    Example:
        >>> followed_alias("iris"), followed_alias("iris:3")
        ('production', None)
    """
    parsed = parse_ref(ref)
    if parsed.version is not None or parsed.alias is None or RESERVED_ALIAS.match(parsed.alias):
        return None
    return parsed.alias


__all__ = ["DEFAULT_STEP_SECONDS", "DeployRequest", "Resolver", "apply_deploy", "followed_alias"]
