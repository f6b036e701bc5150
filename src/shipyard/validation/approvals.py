"""Human approval and the promotion policy: what a version needs before ``production``.

Two rules guard the aliases in :data:`PROTECTED_ALIASES`:

1. **Gates.** If the version's latest gate run failed, it may not take the
   alias. (A version never gated is not blocked by this rule: gating is
   opt-in per model, and requiring approvals is the way to require a person.)
2. **Approvals.** If the model (or, failing a setting of its own, the whole
   registry) requires N approvals, the version needs approvals from N distinct
   people, and no rejection after the last approval. A person's later decision
   replaces their earlier one. A rejection that no approval followed blocks
   even where no approvals are required: someone said no.

Either rule can be overridden with ``force=True`` and a written reason, which
the audit log keeps (action ``force_alias``).

Example:
    >>> status = approval_status(decisions=(), required=0)
    >>> status.satisfied, status.approvers
    (True, ())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.errors import ConflictError, InvalidInputError
from shipyard.store.validation_records import Decision, PromotionFacts
from shipyard.store.validation_store import ValidationStore

#: Aliases a version can only take after passing its gates and approvals (or by force).
PROTECTED_ALIASES: frozenset[str] = frozenset({"production"})


class PromotionBlockedError(ConflictError):
    """A version may not take a protected alias: failed gates or missing approvals."""

    def __init__(self, message: str, *, problems: Sequence[str]) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


@dataclass(frozen=True)
class ApprovalStatus:
    """Who approves a version now, how many are required, and whether that is enough."""

    required: int
    approvers: tuple[str, ...]
    rejected_by: tuple[str, ...]
    rejected_after_last_approval: bool

    @property
    def satisfied(self) -> bool:
        return len(self.approvers) >= self.required and not self.rejected_after_last_approval

    def describe(self) -> str:
        text = f"{len(self.approvers)}/{self.required} approvals"
        if self.approvers:
            text += f" ({', '.join(self.approvers)})"
        if self.rejected_after_last_approval:
            text += f"; rejected by {', '.join(self.rejected_by)} after the last approval"
        elif self.rejected_by:
            text += f"; earlier rejected by {', '.join(self.rejected_by)}"
        return text


def approval_status(*, decisions: Sequence[Decision], required: int) -> ApprovalStatus:
    """Count approvals: each person's latest decision counts once.

    Example:
        >>> from datetime import UTC, datetime
        >>> now = datetime.now(UTC)
        >>> ds = [Decision(1, "m", 1, "approve", "ann", None, now),
        ...       Decision(2, "m", 1, "reject", "bob", "no", now)]
        >>> approval_status(decisions=ds, required=1).satisfied
        False
    """
    latest: dict[str, str] = {}
    for d in decisions:  # oldest first: later decisions overwrite earlier ones
        latest[d.actor] = d.decision
    approvers = tuple(sorted(a for a, d in latest.items() if d == "approve"))
    rejecters = tuple(sorted(a for a, d in latest.items() if d == "reject"))
    last_approve = max((d.id for d in decisions if d.decision == "approve"), default=-1)
    late_reject = any(d.decision == "reject" and d.id > last_approve for d in decisions)
    return ApprovalStatus(required, approvers, rejecters, late_reject)


def promotion_problems(facts: PromotionFacts) -> list[str]:
    """Why ``facts``' version may not take a protected alias (empty: it may)."""
    problems = []
    gate = facts.latest_gate
    if gate is not None and not gate.passed:
        failed = [
            c.get("requirement", "?") for c in gate.report.get("checks", []) if not c.get("passed")
        ]
        problems.append(
            f"its latest gate run ({gate.created_at:%Y-%m-%d %H:%M} UTC by {gate.created_by}) "
            f"failed: {'; '.join(failed) or 'see the gate report'}"
        )
    status = approval_status(decisions=facts.decisions, required=facts.required_approvals)
    if not status.satisfied:
        scope = "the registry" if facts.policy_scope == "*" else f"model {facts.model!r}"
        problems.append(f"{scope} requires {status.required} approvals; it has {status.describe()}")
    return problems


def enforce_promotion(
    store: ValidationStore,
    name: str,
    alias: str,
    version: int,
    *,
    force: bool,
    reason: str | None,
) -> list[str]:
    """Raise :class:`PromotionBlockedError` unless ``name:version`` may take ``alias``.

    Returns the problems that ``force`` overrode (empty when nothing was
    blocked or the alias is not protected). Forcing needs a non-empty reason.
    """
    if force and not (reason and reason.strip()):
        raise InvalidInputError(
            "Forcing an alias needs a written reason for the audit log: pass "
            "reason='...' (CLI: --force --reason '...')."
        )
    if alias not in PROTECTED_ALIASES:
        return []
    problems = promotion_problems(store.promotion_facts(name, version))
    if problems and not force:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise PromotionBlockedError(
            f"{name}:{version} cannot take alias {alias!r}:\n{listed}\n"
            f"Fix that (re-run `shipyard validate model {name}:{version} ...`, or get "
            f"approvals with `shipyard approve {name}:{version}`), or override with "
            f"`shipyard models alias {name} {alias} {version} --force --reason '...'` "
            "(the reason is kept in the audit log).",
            problems=problems,
        )
    return problems


class PromotionPolicy:
    """The registry's promotion guard (:class:`~shipyard.registry.hooks.PromotionGuard`):
    :func:`enforce_promotion` on every alias move, so protected aliases need passed
    gates and their approvals."""

    def __init__(self, store: ValidationStore) -> None:
        self.store = store

    def __call__(
        self, name: str, alias: str, version: int, *, force: bool, reason: str | None
    ) -> list[str]:
        return enforce_promotion(self.store, name, alias, version, force=force, reason=reason)


def approve(
    store: ValidationStore, name: str, version: int, *, actor: str, comment: str | None = None
) -> ApprovalStatus:
    """Record ``actor``'s approval of ``name:version``; returns the new status."""
    store.record_decision(name, version, "approve", actor=actor, comment=comment)
    return current_status(store, name, version)


def reject(
    store: ValidationStore, name: str, version: int, *, actor: str, comment: str
) -> ApprovalStatus:
    """Record ``actor``'s rejection (a comment saying why is required)."""
    if not comment or not comment.strip():
        raise InvalidInputError("A rejection needs a comment saying why (--comment '...').")
    store.record_decision(name, version, "reject", actor=actor, comment=comment)
    return current_status(store, name, version)


def current_status(store: ValidationStore, name: str, version: int) -> ApprovalStatus:
    facts = store.promotion_facts(name, version)
    return approval_status(decisions=facts.decisions, required=facts.required_approvals)


__all__ = [
    "PROTECTED_ALIASES",
    "ApprovalStatus",
    "PromotionBlockedError",
    "PromotionPolicy",
    "approval_status",
    "approve",
    "current_status",
    "enforce_promotion",
    "promotion_problems",
    "reject",
]
