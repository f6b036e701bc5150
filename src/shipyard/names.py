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


def check_alias_name(value: object) -> str:
    """``value`` if it is shaped like an alias (reserved names are the registry's call)."""
    if not isinstance(value, str) or _ALIAS_RE.fullmatch(value) is None:
        raise InvalidInputError(f"Alias {value!r} is not allowed: {_ALIAS_RULE}.")
    return value


__all__ = ["ALIAS", "NAME", "check_alias_name", "check_name"]
