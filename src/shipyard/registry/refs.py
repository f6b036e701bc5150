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

DEFAULT_ALIAS = "production"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}"
_ALIAS = r"[A-Za-z][A-Za-z0-9_\-]{0,63}"
_NAME_RE = re.compile(rf"^{_NAME}$")
_ALIAS_RE = re.compile(rf"^{_ALIAS}$")
_PATTERNS = (
    re.compile(rf"^models:/(?P<name>{_NAME})/(?P<version>\d+)$"),
    re.compile(rf"^models:/(?P<name>{_NAME})@(?P<alias>{_ALIAS})$"),
    re.compile(rf"^(?P<name>{_NAME}):(?P<version>\d+)$"),
    re.compile(rf"^(?P<name>{_NAME})@(?P<alias>{_ALIAS})$"),
    re.compile(rf"^(?P<name>{_NAME})$"),
)
#: Alias names the registry keeps for itself: ``latest`` resolves to the newest
#: live version, and ``v3`` would be confused with version 3.
RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$")


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
    candidate = text.strip()
    for pattern in _PATTERNS:
        match = pattern.match(candidate)
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
        "NAME:VERSION (versions start at 1), models:/NAME/VERSION or models:/NAME@ALIAS."
    )


def check_model_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidInputError(
            f"Model name {name!r} is not allowed: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (at most 255 characters)."
        )
    return name


def check_alias(alias: str) -> str:
    """Validate an alias a user wants to set."""
    if not _ALIAS_RE.match(alias):
        raise InvalidInputError(
            f"Alias {alias!r} is not allowed: start with a letter, then letters, digits, "
            "'_' or '-' (at most 64 characters)."
        )
    if RESERVED_ALIAS.match(alias):
        raise InvalidInputError(
            f"Alias {alias!r} is reserved: 'latest' always means the newest version and "
            "'v<digits>' would read as a version number. Pick another name."
        )
    return alias
