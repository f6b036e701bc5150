"""Deployment service functions: what the CLI, the Python API and the controller call.

Every change reads the deployment, computes the new desired state, checks it
(weights, versions, gates and approvals) and writes it with a compare-and-set
on the revision it read, in one transaction: a concurrent change makes it fail
with :class:`~shipyard.errors.ConflictError` and nothing is half-applied.

Safety rules, reusing :mod:`shipyard.validation.approvals`:

- a version whose latest gate run failed takes no traffic (canary, A/B arm,
  primary) unless ``force=True`` with a written ``reason``;
- becoming the primary (create, promote, ``set_primary``) also needs the
  approvals the model requires (:func:`enforce_promotion` on ``production``);
- shadows answer nobody, so they need neither.

A deployment created from an alias (``iris``, ``iris@production``) *follows*
it: any change of its primary (promote, automatic promotion, rollback,
``set_primary``, the kill switch) moves that alias to the new primary in the
same transaction, audit-logged, so ``shipyard serve iris`` and ``models list``
agree with the deployment. Rollback and the kill switch move it without the
gate check: they restore a version that served before.

Example:
    >>> deployments = client.deployments                                  # doctest: +SKIP
    >>> deployments.create("web", "iris", 3)                              # doctest: +SKIP
    >>> deployments.set_canary("web", 4, 10)                              # doctest: +SKIP
    >>> deployments.promote("web").primary                                # doctest: +SKIP
    4
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from shipyard.clock import SYSTEM_CLOCK, Clock
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError
from shipyard.registry.refs import check_alias
from shipyard.rollout.records import Deployment, RolloutPolicy, check_split
from shipyard.store.alias_store import AliasStore
from shipyard.store.rollout_records import DeploymentChange, WorkerHeartbeat
from shipyard.store.rollout_store import RolloutStore
from shipyard.store.validation_store import ValidationStore
from shipyard.validation.approvals import PromotionBlockedError, enforce_promotion

#: How many earlier primaries a deployment remembers for ``rollback``.
HISTORY_DEPTH = 20
#: Each server worker reports the deployment it serves on every poll (2 s by default);
#: no report for this long means no server serves it.
SERVER_SILENCE_SECONDS = 60


class Deployments:
    """Create and change deployments; every method is one optimistic transaction."""

    def __init__(
        self,
        store: RolloutStore,
        validation: ValidationStore,
        aliases: AliasStore,
        *,
        actor: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.validation = validation
        self.aliases = aliases
        self.actor = actor
        self.clock = clock

    def acting_as(self, actor: str, *, clock: Clock | None = None) -> Deployments:
        """The same deployments, changed by ``actor`` (a controller, a server worker)."""
        return Deployments(
            self.store, self.validation, self.aliases, actor=actor, clock=clock or self.clock
        )

    # -- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> Deployment:
        record = self.store.get(name)
        return Deployment.from_spec(
            record.name,
            record.model,
            record.spec,
            revision=record.revision,
            updated_at=record.updated_at,
            updated_by=record.updated_by,
        )

    def list_deployments(self, model: str | None = None) -> list[Deployment]:
        """Every deployment (of ``model``, if given), by name."""
        return [
            Deployment.from_spec(r.name, r.model, r.spec, revision=r.revision)
            for r in self.store.list_deployments()
            if model is None or r.model == model
        ]

    def describe_for_model(self, model: str) -> list[str]:
        """Lines for ``models show``: each deployment of ``model``, what it routes, what it follows.

        Example:
            >>> deployments.describe_for_model("iris")              # doctest: +SKIP
            ['deployment web: primary iris:3 (follows iris@production), canary iris:4 10%']
        """
        lines = []
        for d in self.list_deployments(model):
            routes = ", ".join(
                f"{v.name} {d.model}:{v.version}" + ("" if v.weight == 100 else f" {v.weight:g}%")
                for v in d.variants()
            )
            shadows = "".join(f", shadow {d.model}:{s}" for s in d.shadows)
            follows = "" if d.follows is None else f"; follows {d.model}@{d.follows}"
            lines.append(f"deployment {d.name}: {routes}{shadows}{follows}")
            gap = self.alias_gap(d)
            if gap is not None:
                lines.append(f"  warning: {gap}")
        return lines

    def alias_gap(self, d: Deployment) -> str | None:
        """None when ``d`` follows no alias or its alias points at its primary; else how not.

        The gap opens when someone moves the alias by hand (``models alias``).
        """
        if d.follows is None:
            return None
        try:
            pointed = self.aliases.get_alias(d.model, d.follows)
        except NotFoundError:
            pointed = None
        if pointed == d.primary:
            return None
        where = "is not set" if pointed is None else f"points at {d.model}:{pointed}"
        return (
            f"{d.model}@{d.follows} {where}, but deployment {d.name!r} serves "
            f"{d.model}:{d.primary} (the alias was moved by hand). Its next promotion or "
            f"rollback moves the alias again; `shipyard deploy {d.name} --model "
            f"{d.model}@{d.follows}` makes the deployment serve the alias's version now"
        )

    def changes(self, name: str, *, limit: int = 20) -> list[DeploymentChange]:
        return self.store.changes(name, limit=limit)

    def live_workers(
        self, name: str, *, within: float = SERVER_SILENCE_SECONDS
    ) -> list[WorkerHeartbeat]:
        """The server workers that reported serving ``name`` in the last ``within`` seconds."""
        since = self.clock.now() - timedelta(seconds=within)
        return [w for w in self.store.workers(name) if w.seen_at >= since]

    def unserved(self, name: str, *, within: float = SERVER_SILENCE_SECONDS) -> str | None:
        """None while a server serves ``name``; otherwise what that means and what to do.

        Example:
            >>> deployments.unserved("web")                        # doctest: +SKIP
            "no server has served deployment 'web' in the last 60 s (none running now); ..."
        """
        if self.live_workers(name, within=within):
            return None
        # A server that stopped cleanly dropped its heartbeat but its request counters
        # stay: they tell when it last served.
        seen = [w.seen_at for w in self.store.workers(name)]
        seen += [c.reported_at for c in self.store.epoch_counts(name)]
        last = f"last seen {max(seen):%Y-%m-%d %H:%M:%S} UTC" if seen else "none running now"
        return (
            f"no server has served deployment {name!r} in the last {within:g} s ({last}): "
            f"its traffic split only takes effect in servers, so a canary gets no requests. "
            f"Start one with `shipyard serve --deployment {name}`"
        )

    def _read(self, name: str, expected_revision: int | None) -> Deployment:
        """The deployment, if it is still at ``expected_revision`` (None: any)."""
        d = self.get(name)
        if expected_revision is not None and d.revision != expected_revision:
            raise ConflictError(
                f"Deployment {name!r} was changed by someone else (it is at revision "
                f"{d.revision}, this change was based on revision {expected_revision}); "
                f"re-read it with `shipyard deploy status {name}` and retry."
            )
        return d

    # -- safety checks ---------------------------------------------------------------------

    def _check_traffic(
        self, model: str, version: int, *, force: bool, reason: str | None
    ) -> list[str]:
        """A gate-failed version takes no traffic unless forced with a reason."""
        if force and not (reason and reason.strip()):
            raise InvalidInputError(
                "Forcing needs a written reason for the audit log (--force --reason '...')."
            )
        gate = self.validation.latest_gate_result(model, version)
        if gate is None or gate.passed:
            return []
        failed = [
            c.get("requirement", "?") for c in gate.report.get("checks", []) if not c.get("passed")
        ]
        problem = f"its latest gate run failed: {'; '.join(failed) or 'see the gate report'}"
        if not force:
            raise PromotionBlockedError(
                f"{model}:{version} cannot take traffic: {problem}. Fix it (re-run `shipyard "
                f"validate model {model}:{version} ...`) or override with --force --reason "
                "'...' (the reason is kept in the audit log).",
                problems=[problem],
            )
        return [problem]

    def _check_primary(
        self, model: str, version: int, *, force: bool, reason: str | None
    ) -> list[str]:
        """Becoming primary needs passed gates and the required approvals (or force)."""
        return enforce_promotion(
            self.validation, model, "production", version, force=force, reason=reason
        )

    # -- writing ---------------------------------------------------------------------------

    def _apply(
        self,
        current: Deployment,
        new: Deployment,
        *,
        action: str,
        reason: str | None,
        expected_revision: int | None,
        audit: dict[str, Any] | None = None,
    ) -> Deployment:
        expected = current.revision if expected_revision is None else expected_revision
        move_alias = None
        if new.follows is not None and new.primary != current.primary:
            move_alias = (new.follows, new.primary)
            audit = {**(audit or {})}
            audit["details"] = {**audit.get("details", {}), "moves": f"{new.model}@{new.follows}"}
        record = self.store.update(
            current.name,
            new.to_spec(),
            expected_revision=expected,
            # Only versions that newly take traffic are checked: what already serves stays.
            versions=new.versions() - current.versions(),
            actor=self.actor,
            action=action,
            reason=reason,
            audit=audit,
            move_alias=move_alias,
        )
        return Deployment.from_spec(
            record.name,
            record.model,
            record.spec,
            revision=record.revision,
            updated_at=record.updated_at,
            updated_by=record.updated_by,
        )

    def _new_traffic(self, d: Deployment, **changes: Any) -> Deployment:
        """A traffic change starts a new stats epoch (counters restart) and step clock."""
        return d.evolve(epoch=d.epoch + 1, step_started_at=self.clock.now(), **changes)

    def _all_traffic_to(
        self, d: Deployment, version: int, *, history: tuple[int, ...], **changes: Any
    ) -> Deployment:
        """Every request to ``version`` as primary: no canary, A/B split or rollout policy."""
        return self._new_traffic(
            d,
            primary=version,
            canary=None,
            canary_weight=0.0,
            split=(),
            policy=None,
            step=0,
            history=history,
            **changes,
        )

    def create(
        self,
        name: str,
        model: str,
        version: int,
        *,
        force: bool = False,
        reason: str | None = None,
        follows: str | None = None,
    ) -> Deployment:
        """Create deployment ``name`` with ``model:version`` as its primary.

        ``follows``: the alias ``version`` was resolved from (``production`` for
        ``iris``); promotions of the deployment will move it.
        """
        if follows is not None:
            check_alias(follows)
            pointed = self.aliases.get_alias(model, follows)
            if pointed != version:
                raise InvalidInputError(
                    f"{model}@{follows} points at version {pointed}, not {version}: a "
                    "deployment follows the alias it starts from."
                )
        forced = self._check_primary(model, version, force=force, reason=reason)
        d = Deployment(
            name=name,
            model=model,
            primary=version,
            last_known_good=version,
            step_started_at=self.clock.now(),
            follows=follows,
        )
        record = self.store.create(
            name,
            model,
            d.to_spec(),
            versions=[version],
            actor=self.actor,
            reason=reason,
            audit={
                "to": f"{model}:{version}",
                "details": {"forced": forced, "follows": follows},
            },
        )
        return Deployment.from_spec(
            record.name, record.model, record.spec, revision=record.revision
        )

    def set_primary(
        self,
        name: str,
        version: int,
        *,
        force: bool = False,
        reason: str | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Switch all traffic to ``version`` at once (drops a canary or split)."""
        d = self._read(name, expected_revision)
        forced = self._check_primary(d.model, version, force=force, reason=reason)
        if version == d.primary and d.mode == "primary":
            return d
        new = self._all_traffic_to(
            d,
            version,
            history=_push(d.history, d.primary, version),
            last_known_good=version,
            killed=False,
            paused=False,
        )
        return self._apply(
            d,
            new,
            action="deploy_primary",
            reason=reason,
            expected_revision=expected_revision,
            audit={"from": str(d.primary), "to": str(version), "details": {"forced": forced}},
        )

    def set_canary(
        self,
        name: str,
        version: int,
        weight: float | None = None,
        *,
        policy: RolloutPolicy | None = None,
        force: bool = False,
        reason: str | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Send ``weight`` % of requests to ``version`` (or the policy's first step)."""
        d = self._read(name, expected_revision)
        if d.killed:
            raise InvalidInputError(
                f"Deployment {name!r} is killed (pinned to {d.model}:{d.primary}); lift the "
                f"kill switch with `shipyard deploy resume {name}` before a new canary."
            )
        if version == d.primary:
            raise InvalidInputError(
                f"{d.model}:{version} is already the primary of {name!r}; a canary must be "
                "another version."
            )
        if d.split:
            raise InvalidInputError(
                f"Deployment {name!r} runs an A/B split; end it first by promoting an arm "
                f"(`shipyard promote {name} --version VERSION`, the primary's included)."
            )
        if weight is None:
            if policy is None:
                raise InvalidInputError("Give a canary weight (--canary 10) or a policy.")
            weight = policy.steps[0]
        forced = self._check_traffic(d.model, version, force=force, reason=reason)
        new = self._new_traffic(
            d, canary=version, canary_weight=float(weight), split=(), policy=policy, step=0
        )
        return self._apply(
            d,
            new,
            action="deploy_canary",
            reason=reason,
            expected_revision=expected_revision,
            audit={
                "from": None if d.canary is None else f"{d.canary}@{d.canary_weight:g}%",
                "to": f"{version}@{weight:g}%",
                "details": {
                    "forced": forced,
                    "policy": None if policy is None else policy.to_dict(),
                },
            },
        )

    def set_split(
        self,
        name: str,
        weights: dict[int, float],
        *,
        sticky_header: str | None = None,
        force: bool = False,
        reason: str | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Split traffic between versions by ``weights`` (in %, adding up to 100)."""
        d = self._read(name, expected_revision)
        check_split(d.primary, weights)
        if d.canary is not None:
            raise InvalidInputError(
                f"Deployment {name!r} has a canary ({d.model}:{d.canary}); promote or roll it "
                "back before starting an A/B split."
            )
        forced: list[str] = []
        for version in weights:
            if version != d.primary:
                forced += self._check_traffic(d.model, version, force=force, reason=reason)
        new = self._new_traffic(
            d, split=tuple(sorted(weights.items())), sticky_header=sticky_header, step=0
        )
        listed = ",".join(f"{v}={w:g}" for v, w in sorted(weights.items()))
        return self._apply(
            d,
            new,
            action="deploy_split",
            reason=reason,
            expected_revision=expected_revision,
            audit={"to": listed, "details": {"forced": forced, "sticky_header": sticky_header}},
        )

    def set_shadows(
        self,
        name: str,
        versions: Iterable[int],
        *,
        reason: str | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Mirror traffic to ``versions`` (empty: no shadows); their answers are only logged."""
        d = self._read(name, expected_revision)
        shadows = tuple(sorted(set(versions)))
        if d.primary in shadows:
            raise InvalidInputError(
                f"{d.model}:{d.primary} is the primary of {name!r}; it cannot also shadow it."
            )
        new = d.evolve(shadows=shadows)
        return self._apply(
            d,
            new,
            action="deploy_shadows",
            reason=reason,
            expected_revision=expected_revision,
            audit={"from": _listed(d.shadows), "to": _listed(shadows)},
        )

    def promote(
        self,
        name: str,
        *,
        version: int | None = None,
        force: bool = False,
        reason: str | None = None,
        expected_revision: int | None = None,
        action: str = "promote",
    ) -> Deployment:
        """Make the canary (or ``version``, e.g. an A/B winner) the primary."""
        d = self._read(name, expected_revision)
        if version is None:
            if d.canary is None:
                raise InvalidInputError(
                    f"Deployment {name!r} has no canary to promote; name the version to promote "
                    f"with --version (A/B arms: {_listed(v for v, _ in d.split) or 'none'})."
                )
            version = d.canary
        elif version not in {v.version for v in d.variants()}:
            raise InvalidInputError(
                f"{d.model}:{version} takes no traffic in {name!r} (variants: "
                f"{', '.join(f'{v.name}={v.version}' for v in d.variants())}); only a canary or "
                "an A/B arm can be promoted."
            )
        if version == d.primary and d.mode == "primary":
            raise InvalidInputError(f"{d.model}:{version} is already the primary of {name!r}.")
        forced = self._check_primary(d.model, version, force=force, reason=reason)
        new = self._all_traffic_to(
            d,
            version,
            history=_push(d.history, d.primary, version),
            shadows=tuple(s for s in d.shadows if s != version),
            last_known_good=version,
        )
        return self._apply(
            d,
            new,
            action=action,
            reason=reason,
            expected_revision=expected_revision,
            audit={"from": str(d.primary), "to": str(version), "details": {"forced": forced}},
        )

    def rollback(
        self, name: str, *, reason: str | None = None, expected_revision: int | None = None
    ) -> Deployment:
        """Back to the previous primary, dropping any canary or split, in one change."""
        d = self._read(name, expected_revision)
        if not d.history:
            raise InvalidInputError(
                f"Deployment {name!r} has no previous primary to roll back to ({d.model}:"
                f"{d.primary} is the oldest primary it remembers). To drop a canary, use "
                f"`shipyard deploy abort {name}`; to switch to another version, `shipyard deploy "
                f"{name} --model {d.model}:VERSION`."
            )
        previous = d.history[-1]
        new = self._all_traffic_to(
            d,
            previous,
            history=d.history[:-1],
            shadows=tuple(s for s in d.shadows if s != previous),
            # The version rolled back from is distrusted now: the kill switch must not
            # pin it. The one restored served before it did.
            last_known_good=previous,
        )
        return self._apply(
            d,
            new,
            action="rollback",
            reason=reason,
            expected_revision=expected_revision,
            audit={"from": str(d.primary), "to": str(previous)},
        )

    def abort_canary(
        self,
        name: str,
        *,
        reason: str,
        automatic: bool = False,
        details: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Send the canary's traffic back to the primary (the policy's automatic rollback)."""
        d = self._read(name, expected_revision)
        if d.canary is None:
            raise InvalidInputError(f"Deployment {name!r} has no canary to roll back.")
        new = self._new_traffic(d, canary=None, canary_weight=0.0, policy=None, step=0)
        return self._apply(
            d,
            new,
            action="auto_rollback" if automatic else "abort_canary",
            reason=reason,
            expected_revision=expected_revision,
            audit={
                "from": f"{d.canary}@{d.canary_weight:g}%",
                "to": str(d.primary),
                "details": details or {},
            },
        )

    def advance(
        self,
        name: str,
        *,
        reason: str,
        details: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Move the canary to its policy's next step (promote after the last one)."""
        d = self._read(name, expected_revision)
        if d.canary is None or d.policy is None:
            raise InvalidInputError(f"Deployment {name!r} has no canary under a rollout policy.")
        nxt = d.step + 1
        if nxt >= len(d.policy.steps) or d.policy.steps[nxt] >= 100:
            # Full traffic on the canary is promotion: the primary role moves to it.
            return self.promote(
                name, reason=reason, expected_revision=expected_revision, action="auto_promote"
            )
        weight = d.policy.steps[nxt]
        new = self._new_traffic(d, canary_weight=weight, step=nxt)
        return self._apply(
            d,
            new,
            action="advance_canary",
            reason=reason,
            expected_revision=expected_revision,
            audit={
                "from": f"{d.canary_weight:g}%",
                "to": f"{weight:g}%",
                "details": details or {},
            },
        )

    def kill(self, name: str, *, reason: str | None = None) -> Deployment:
        """Kill switch: pin the last known-good version, 100 %, no canary/split/shadows."""
        d = self.get(name)
        pinned = d.last_known_good if d.last_known_good is not None else d.primary
        history = d.history if pinned == d.primary else _push(d.history, d.primary, pinned)
        new = self._all_traffic_to(d, pinned, history=history, shadows=(), paused=True, killed=True)
        return self._apply(
            d,
            new,
            action="kill_switch",
            reason=reason,
            expected_revision=None,
            audit={"from": str(d.primary), "to": str(pinned)},
        )

    def resume(self, name: str, *, reason: str | None = None) -> Deployment:
        """Lift the kill switch (traffic stays pinned until the next change)."""
        d = self.get(name)
        if not d.killed:
            raise InvalidInputError(f"Deployment {name!r} is not killed.")
        return self._apply(
            d,
            d.evolve(killed=False, paused=False),
            action="resume",
            reason=reason,
            expected_revision=None,
        )


def _push(history: tuple[int, ...], old: int, new: int) -> tuple[int, ...]:
    if old == new:
        return history
    return (*history, old)[-HISTORY_DEPTH:]


def _listed(versions: Iterable[int]) -> str:
    return ",".join(str(v) for v in versions)


__all__ = ["HISTORY_DEPTH", "SERVER_SILENCE_SECONDS", "Deployments"]
