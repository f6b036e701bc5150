"""The names users give things: models, aliases, deployments, experiments, datasets.

Every name is checked against its whole pattern with :func:`re.fullmatch`.
``re.match`` with a ``$`` anchor is not enough: ``$`` also matches before a
trailing newline, so ``"iris\\n"`` would pass as a second, unreachable model
that prints like ``iris``, and ``"production\\n"`` as an alias that skips the
production gates.

>>> check_name("iris-v2.1", kind="Model name")
'iris-v2.1'
>>> check_name("iris\\n", kind="Model name")
Traceback (most recent call last):
...
shipyard.errors.InvalidInputError: Model name 'iris\\n' is not allowed: ...
"""

from __future__ import annotations

import re

from shipyard.errors import InvalidInputError

#: Models, deployments, experiments and dataset contexts.
NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}"
#: Aliases (``production``, ``staging``, ``champion``...).
ALIAS = r"[A-Za-z][A-Za-z0-9_\-]{0,63}"

#: Alias names the registry keeps for itself: ``latest`` resolves to the newest
#: live version, and ``v3`` would be confused with version 3.
RESERVED_ALIAS = re.compile(r"latest|v\d+")

_NAME_RE = re.compile(NAME)
_ALIAS_RE = re.compile(ALIAS)
_NAME_RULE = (
    "use letters, digits, '_', '-' or '.', starting with a letter or digit (at most 255 characters)"
)
_ALIAS_RULE = "start with a letter, then letters, digits, '_' or '-' (at most 64 characters)"


def check_name(value: object, *, kind: str) -> str:
    """``value`` if it is a valid name; InvalidInputError naming ``kind`` otherwise."""
    if not isinstance(value, str) or _NAME_RE.fullmatch(value) is None:
        raise InvalidInputError(f"{kind} {value!r} is not allowed: {_NAME_RULE}.")
    return value


def check_model_name(name: object) -> str:
    return check_name(name, kind="Model name")


def check_alias_name(value: object) -> str:
    """``value`` if it is shaped like an alias (:func:`check_alias` also refuses reserved ones)."""
    if not isinstance(value, str) or _ALIAS_RE.fullmatch(value) is None:
        raise InvalidInputError(f"Alias {value!r} is not allowed: {_ALIAS_RULE}.")
    return value


def check_alias(alias: str) -> str:
    """Validate an alias a user wants to set: its shape, and not a reserved name."""
    check_alias_name(alias)
    if RESERVED_ALIAS.fullmatch(alias):
        raise InvalidInputError(
            f"Alias {alias!r} is reserved: 'latest' always means the newest version and "
            "'v<digits>' would read as a version number. Pick another name."
        )
    return alias


__all__ = [
    "ALIAS",
    "NAME",
    "RESERVED_ALIAS",
    "check_alias",
    "check_alias_name",
    "check_model_name",
    "check_name",
]
