"""The Python environment a model package needs: interpreter version and exact pins.

Captured from the running interpreter when the package is written, so the
serving image can install exactly what the model was saved with.

Example:
    >>> env = capture_environment(["scikit-learn"])
    >>> "scikit-learn" in env["packages"] and "numpy" in env["packages"]
    True
    >>> any(line.startswith("scipy==") for line in requirements_lines(env))
    True
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import re
from functools import lru_cache
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from shipyard.errors import ConfigError, ManifestError

# Every predictor is fed pandas/numpy data by the signature, whatever the flavor.
BASE_PACKAGES: tuple[str, ...] = ("numpy", "pandas")


def canonical_name(name: str) -> str:
    """PEP 503 normalised distribution name: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def _import_to_dists() -> dict[str, list[str]]:
    # Scans every installed distribution once; only needed for import names.
    return dict(md.packages_distributions())


def _distribution(name: str) -> md.Distribution | None:
    """The installed distribution for a distribution *or* import name (``sklearn``)."""
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        pass
    for dist_name in _import_to_dists().get(name, []):
        try:
            return md.distribution(dist_name)
        except md.PackageNotFoundError:
            continue
    return None


def capture_environment(flavor_packages: list[str]) -> dict[str, Any]:
    """Pin the flavor's packages, numpy/pandas, and everything they need at run time.

    ``flavor_packages`` holds distribution names (``scikit-learn``) or import names
    (``sklearn``). Runtime dependencies are followed transitively; optional extras
    and requirements whose environment markers do not apply here are skipped.
    Raises :class:`ConfigError` if a named package is not installed.
    """
    marker_env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    marker_env["extra"] = ""
    packages: dict[str, str] = {}
    queue: list[tuple[str, bool]] = [(n, True) for n in (*BASE_PACKAGES, *flavor_packages)]
    while queue:
        name, required = queue.pop()
        dist = _distribution(name)
        if dist is None:
            if required:
                raise ConfigError(
                    f"Package {name!r} is not installed, so the model environment cannot "
                    f"pin it. Install it (pip install {name}) and save the model again."
                )
            continue  # a dependency of a dependency that its marker did not rule out
        key = canonical_name(dist.metadata["Name"])
        if key in packages:
            continue
        packages[key] = dist.version
        for text in dist.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate(marker_env):
                continue  # extras and other platforms
            queue.append((req.name, False))
    return {
        "python": platform.python_version(),
        "packages": dict(sorted(packages.items())),
    }


def requirements_lines(env: dict[str, Any]) -> list[str]:
    """``["numpy==2.1.0", ...]``, sorted, for a requirements.txt.

    Raises :class:`ManifestError` if ``env`` is not shaped like
    :func:`capture_environment`'s result.
    """
    packages = env.get("packages") if isinstance(env, dict) else None
    if not isinstance(packages, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in packages.items()
    ):
        raise ManifestError(
            'The environment must look like {"python": "3.11.7", "packages": {name: version}}; '
            f"got {env!r:.200}."
        )
    return [f"{name}=={version}" for name, version in sorted(packages.items())]


__all__ = ["BASE_PACKAGES", "canonical_name", "capture_environment", "requirements_lines"]
