"""Model references: ``iris``, ``iris@staging``, ``iris:3``, ``models:/iris/3``.

A bare name means the model's ``production`` alias, as the design asks.

>>> parse_ref("iris@staging")
ModelRef(name='iris', version=None, alias='staging')
>>> str(parse_ref("models:/iris/3"))
'iris:3'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import InvalidReferenceError

# The name rules live in the base layer (the store checks them too); re-exported here
# for the registry's callers.
from shipyard.names import (
    ALIAS,
    NAME,
    RESERVED_ALIAS,
    check_alias,
    check_model_name,
)

__all__ = [
    "DEFAULT_ALIAS",
    "RESERVED_ALIAS",
    "ModelRef",
    "check_alias",
    "check_model_name",
    "parse_ref",
]

DEFAULT_ALIAS = "production"
# Each is matched against the whole reference (fullmatch): "iris\n" is not "iris".
_PATTERNS = (
    re.compile(rf"models:/(?P<name>{NAME})/(?P<version>\d+)"),
    # MLflow's own spelling of the newest version.
    re.compile(rf"models:/(?P<name>{NAME})/(?P<alias>latest)"),
    re.compile(rf"models:/(?P<name>{NAME})@(?P<alias>{ALIAS})"),
    re.compile(rf"(?P<name>{NAME}):(?P<version>\d+)"),
    re.compile(rf"(?P<name>{NAME})@(?P<alias>{ALIAS})"),
    re.compile(rf"(?P<name>{NAME})"),
)


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}"


def parse_ref(text: str) -> ModelRef:
    """Parse a user's model reference; a bare name means ``@production``."""
    # Surrounding spaces are forgiven; any other character outside a pattern is not.
    candidate = text.strip(" ") if isinstance(text, str) else ""
    for pattern in _PATTERNS:
        match = pattern.fullmatch(candidate)
        if match is None:
            continue
        parts = match.groupdict()
        if parts.get("version") is not None:
            version = int(parts["version"])
            if version < 1:
                break
            return ModelRef(parts["name"], version=version)
        return ModelRef(parts["name"], alias=parts.get("alias") or DEFAULT_ALIAS)
    raise InvalidReferenceError(
        f"{text!r} is not a model reference. Use NAME (its production alias), NAME@ALIAS, "
        "NAME:VERSION (versions start at 1), models:/NAME/VERSION, models:/NAME/latest or "
        "models:/NAME@ALIAS."
    )
