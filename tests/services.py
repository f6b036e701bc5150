"""Real services a test needs: skip with the reason, or fail under CI (``CI=true``).

A module of its own, not ``conftest``: a test imports it by name, and a folder's
own ``conftest.py`` would shadow the suite's.
"""

from __future__ import annotations

import os

import pytest


def require_service(available: bool, reason: str) -> None:
    """Skip (or fail under CI) when a real service the test needs is missing."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every back end must be tested)")
    pytest.skip(reason)
