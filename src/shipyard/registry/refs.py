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

from shipyard.errors import InvalidInputError, InvalidReferenceError
from shipyard.names import ALIAS, NAME, check_alias_name, check_name

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
#: Alias names the registry keeps for itself: ``latest`` resolves to the newest
#: live version, and ``v3`` would be confused with version 3.
RESERVED_ALIAS = re.compile(r"latest|v\d+")


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


def check_model_name(name: str) -> str:
    return check_name(name, kind="Model name")


def check_alias(alias: str) -> str:
    """Validate an alias a user wants to set."""
    check_alias_name(alias)
    if RESERVED_ALIAS.fullmatch(alias):
        raise InvalidInputError(
            f"Alias {alias!r} is reserved: 'latest' always means the newest version and "
            "'v<digits>' would read as a version number. Pick another name."
        )
    return alias
