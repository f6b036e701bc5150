"""Records the validation store hands out: contracts, gate runs, decisions, promotion facts.

>>> contract_digest({"b": 1, "a": 2}) == contract_digest({"a": 2, "b": 1})
True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.errors import NotFoundError

#: The policy scope that applies to every model without a policy of its own.
REGISTRY_SCOPE = "*"
DECISIONS = ("approve", "reject")
CONTRACT_SOURCES = ("inferred", "imported", "packaged")


class ContractNotFoundError(NotFoundError):
    """The version has no data contract stored."""


@dataclass(frozen=True)
class ContractRecord:
    """One stored revision of a version's data contract (``contract`` is its JSON form)."""

    model: str
    version: int
    revision: int
    contract: dict[str, Any]
    digest: str
    source: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class GateRecord:
    """One stored run of the model gates on a version (``report`` is its JSON form)."""

    id: int
    model: str
    version: int
    passed: bool
    against: str | None
    report: dict[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Decision:
    """An approve or reject decision on a version."""

    id: int
    model: str
    version: int
    decision: str
    actor: str
    comment: str | None
    at: datetime


@dataclass(frozen=True)
class PromotionFacts:
    """What the promotion policy needs to know about one version, read at once."""

    model: str
    version: int
    latest_gate: GateRecord | None
    decisions: tuple[Decision, ...] = ()
    required_approvals: int = 0
    policy_scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def contract_digest(contract: dict[str, Any]) -> str:
    """SHA-256 of the contract's canonical JSON, so two equal contracts share a digest.

    >>> contract_digest({"b": 1, "a": 2}) == contract_digest({"a": 2, "b": 1})
    True
    """
    text = json.dumps(contract, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = [
    "CONTRACT_SOURCES",
    "DECISIONS",
    "REGISTRY_SCOPE",
    "ContractNotFoundError",
    "ContractRecord",
    "Decision",
    "GateRecord",
    "PromotionFacts",
    "contract_digest",
]
