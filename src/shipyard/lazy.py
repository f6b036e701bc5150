"""Package attributes imported on first use (PEP 562).

A package that re-exports names from heavy submodules hands its ``__getattr__``
to :func:`lazy_exports`: ``import shipyard`` and the CLI then start without
pandas, and importing one light submodule (``shipyard.tables.locations``) does
not run its siblings' imports through the package's ``__init__``.

>>> __getattr__ = lazy_exports(__name__, {"read_table": "shipyard.tables.frames"})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each public name to
    the module defining it, imported when the name is first looked up."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    return __getattr__


__all__ = ["lazy_exports"]
