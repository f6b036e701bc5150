"""Environment capture: exact pins of the flavor's packages and what they need."""

from __future__ import annotations

import importlib.metadata as md
import platform

import pytest

from shipyard.errors import ConfigError, ManifestError
from shipyard.registry.environment import (
    canonical_name,
    capture_environment,
    requirements_lines,
)


def test_sklearn_environment_pins_runtime_dependencies() -> None:
    env = capture_environment(["scikit-learn"])
    assert env["python"] == platform.python_version()
    packages = env["packages"]
    for name in ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "threadpoolctl"):
        assert packages[name] == md.version(name), name
    # Test-only extras of pandas/scikit-learn are not runtime needs.
    assert "pytest" not in packages


def test_import_names_resolve_to_their_distribution() -> None:
    env = capture_environment(["xgboost"])
    dist = md.packages_distributions()["xgboost"][0]
    assert env["packages"][canonical_name(dist)] == md.version(dist)


def test_uninstalled_package_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="'no-such-dist-xyz' is not installed"):
        capture_environment(["no-such-dist-xyz"])


def test_requirements_lines_are_sorted_exact_pins() -> None:
    env = capture_environment(["lightgbm"])
    lines = requirements_lines(env)
    assert lines == sorted(lines)
    assert f"lightgbm=={md.version('lightgbm')}" in lines
    assert all("==" in line for line in lines)


def test_requirements_lines_reject_malformed_environment() -> None:
    with pytest.raises(ManifestError, match="packages"):
        requirements_lines({"python": "3.11.7"})


def test_canonical_name() -> None:
    assert canonical_name("Scikit_Learn") == "scikit-learn"
    assert canonical_name("typing.extensions") == "typing-extensions"
