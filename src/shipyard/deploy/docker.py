"""Container recipe: a Docker build context that serves one model package.

:func:`write_container_context` fills a folder with everything ``docker build``
needs: a ``Dockerfile`` on the model's Python (``python:3.11-slim`` for a model
saved on 3.11.7) that runs as a non-root user, a ``requirements.txt`` pinning
every package the model was saved with (``name==version``) plus Shipyard
itself, a ``.dockerignore``, and a copy of the model package under ``model/``.
The image serves the model with ``shipyard serve /opt/model`` on port 8000 and
checks ``/health``.

>>> write_container_context(                                    # doctest: +SKIP
...     Path("packages/iris-3"),
...     {"python": "3.11.7", "packages": {"scikit-learn": "1.9.1"}},
...     Path("build/iris-3"),
...     model_ref="iris:3",
...     shipyard_requirement="shipyard==0.1.0",
... )
[PosixPath('build/iris-3/Dockerfile'), PosixPath('build/iris-3/requirements.txt'), ...]

Then ``docker build -t iris:3 build/iris-3 && docker run -p 8000:8000 iris:3``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import ConflictError, InvalidInputError, ManifestError, reason
from shipyard.registry.environment import canonical_name
from shipyard.registry.refs import parse_ref

__all__ = ["MODEL_DIR", "SERVE_PORT", "WHEELS_DIR", "write_container_context"]

#: Where the image keeps the model package.
MODEL_DIR = "/opt/model"
#: Where the image keeps wheels that no package index serves (Shipyard's own).
WHEELS_DIR = "/opt/wheels"
#: The port ``shipyard serve`` listens on inside the container.
SERVE_PORT = 8000
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a number.
RUN_AS_USER = 10001
_HOME = "/var/lib/shipyard"
# Names and versions go into requirements.txt verbatim, so they must not be
# able to smuggle in pip options ("--index-url ...") or extra lines.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_PYTHON = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)?(?:(?:a|b|rc)\d+)?")
_SHIPYARD_REQ = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9._,\s-]+\])?\s*"
    r"(?:==\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)|@\s*(?P<url>\S+))"
)
# Never part of a model; excluded from the copy and from the build context.
_IGNORED = ("__pycache__", "*.pyc")


def write_container_context(
    package_dir: Path,
    manifest_environment: Mapping[str, Any],
    out_dir: Path,
    *,
    model_ref: str,
    shipyard_requirement: str,
    wheels: Sequence[Path] = (),
) -> list[Path]:
    """Write a Docker build context serving ``package_dir`` into ``out_dir``.

    ``manifest_environment`` is the model manifest's environment,
    ``{"python": "3.11.7", "packages": {"scikit-learn": "1.9.1", ...}}``;
    ``shipyard_requirement`` pins the Shipyard that serves it
    (``shipyard==0.1.0`` or ``shipyard @ https://.../shipyard-0.1.0.whl``) and
    replaces any ``shipyard`` pin in the environment. ``model_ref`` (``iris:3``)
    labels the image. ``wheels`` are copied to ``wheels/`` in the context and to
    ``/opt/wheels`` in the image before ``pip install``, so a requirement can
    name a wheel that no index has (``shipyard @ file:///opt/wheels/...``).

    ``out_dir`` must be absent or empty; the context is assembled beside it and
    renamed into place, so a failure leaves no half-written context. Returns the
    paths written: Dockerfile, requirements.txt, .dockerignore and the
    ``model`` folder.

    Raises :class:`~shipyard.errors.ManifestError` for an environment that is
    not shaped as above, :class:`~shipyard.errors.InvalidInputError` for a bad
    argument, :class:`~shipyard.errors.ConflictError` if ``out_dir`` holds files.

    >>> write_container_context(                                # doctest: +SKIP
    ...     Path("pkg"), {"python": "3.11.7", "packages": {}}, Path("ctx"),
    ...     model_ref="iris:3", shipyard_requirement="shipyard==0.1.0")
    """
    package_dir, out_dir = Path(package_dir), Path(out_dir)
    ref = str(parse_ref(model_ref))
    python = _python_series(manifest_environment)
    requirements = _requirements(manifest_environment, shipyard_requirement, ref)
    _check_folders(package_dir, out_dir)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        (staging / "Dockerfile").write_text(
            _dockerfile(python, ref, with_wheels=bool(wheels)), encoding="utf-8"
        )
        (staging / "requirements.txt").write_text(requirements, encoding="utf-8")
        (staging / ".dockerignore").write_text(_dockerignore(), encoding="utf-8")
        _copy_package(package_dir, staging / "model")
        if wheels:
            (staging / "wheels").mkdir()
            for wheel in wheels:
                shutil.copy2(wheel, staging / "wheels" / Path(wheel).name)
        # mkdtemp makes the folder private (0700); a build context is ordinary.
        staging.chmod(0o755)
        # rename() onto an absent or empty folder is atomic on POSIX.
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    names = ["Dockerfile", "requirements.txt", ".dockerignore", "model"]
    return [out_dir / name for name in [*names, *(["wheels"] if wheels else [])]]


def _copy_package(package_dir: Path, dest: Path) -> None:
    try:
        shutil.copytree(package_dir, dest, ignore=shutil.ignore_patterns(*_IGNORED))
    except shutil.Error as exc:
        # copytree gathers per-file failures (a dangling link, an unreadable file).
        raise ManifestError(
            f"Could not copy the model package {package_dir} into the build context: "
            f"{reason(exc)}. Fix or remove those files and try again."
        ) from exc
    # COPY keeps file modes and the image's files belong to root, so a model
    # file saved as 0600 would be unreadable to the unprivileged server.
    for path in [dest, *dest.rglob("*")]:
        extra = 0o555 if path.is_dir() else 0o444
        path.chmod(path.stat().st_mode | extra)


def _python_series(environment: Mapping[str, Any]) -> str:
    """``"3.11.7"`` -> ``"3.11"``: the base image follows the minor series."""
    if not isinstance(environment, Mapping):
        raise ManifestError(
            'The model environment must be {"python": "3.11.7", "packages": {...}}; '
            f"got {type(environment).__name__}."
        )
    version = environment.get("python")
    match = _PYTHON.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise ManifestError(
            f"The model environment's 'python' is {version!r}; expected a CPython "
            f"version such as '3.11.7'. Save the model again to record it."
        )
    # Patch releases of one series share the ABI, so python:3.11-slim runs a
    # model saved on 3.11.7 and keeps receiving security fixes.
    return f"{match['major']}.{match['minor']}"


def _requirements(environment: Mapping[str, Any], shipyard_requirement: str, ref: str) -> str:
    packages = environment.get("packages")
    if not isinstance(packages, Mapping):
        raise ManifestError(
            f"The model environment's 'packages' is {packages!r:.80}; expected a mapping "
            f"of package name to exact version, e.g. {{'scikit-learn': '1.9.1'}}."
        )
    pins: dict[str, str] = {}
    for name, version in packages.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ManifestError(
                f"The model environment lists the package {name!r}, which is not a valid "
                f"distribution name (letters, digits, '.', '_' and '-')."
            )
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise ManifestError(
                f"The model environment pins {name} to {version!r}; expected one exact "
                f"version such as '1.9.1'."
            )
        key = canonical_name(name)
        if key in pins:
            raise ManifestError(
                f"The model environment lists {key} twice (as {name!r} too); keep one pin."
            )
        pins[key] = f"{key}=={version}"
    shipyard_line = _shipyard_line(shipyard_requirement)
    # The serving runtime is chosen by whoever builds the image, not by the
    # Shipyard the model happened to be saved with.
    pins.pop("shipyard", None)
    lines = [
        f"# Pinned by Shipyard for {ref}: the packages it was saved with, then Shipyard.",
        *(pins[key] for key in sorted(pins)),
        shipyard_line,
    ]
    return "\n".join(lines) + "\n"


def _shipyard_line(requirement: str) -> str:
    text = requirement.strip() if isinstance(requirement, str) else ""
    match = _SHIPYARD_REQ.fullmatch(text)
    if match is None or canonical_name(match["name"]) != "shipyard":
        raise InvalidInputError(
            f"shipyard_requirement {requirement!r} is not an exact Shipyard requirement; "
            f"expected 'shipyard==<version>' or 'shipyard @ <wheel or source URL>'."
        )
    return text


def _check_folders(package_dir: Path, out_dir: Path) -> None:
    if not package_dir.is_dir():
        raise InvalidInputError(
            f"Model package folder {package_dir} does not exist or is not a folder; "
            f"pass the folder that holds the model's manifest."
        )
    package, out = package_dir.resolve(), out_dir.resolve()
    if out == package or out.is_relative_to(package):
        raise InvalidInputError(
            f"The build context folder {out_dir} is inside the model package "
            f"{package_dir}; write it somewhere else."
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConflictError(
            f"The build context folder {out_dir} already exists and is not an empty "
            f"folder; choose a new folder or delete it first."
        )


def _dockerfile(python: str, ref: str, *, with_wheels: bool = False) -> str:
    health = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{SERVE_PORT}/health', timeout=4)"
    )
    copy_wheels = f"COPY wheels/ {WHEELS_DIR}/\n" if with_wheels else ""
    entrypoint = [
        "shipyard", "serve", MODEL_DIR, "--host", "0.0.0.0", "--port", str(SERVE_PORT),
    ]  # fmt: skip
    return f"""\
# Generated by Shipyard for {ref}. Build: docker build -t <image> .
FROM python:{python}-slim

LABEL org.opencontainers.image.title="shipyard-model" \\
      io.shipyard.model-ref="{ref}"

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    SHIPYARD_HOME={_HOME}

# The server runs as this unprivileged user; it owns only its data folder.
RUN groupadd --system --gid {RUN_AS_USER} shipyard \\
 && useradd --system --uid {RUN_AS_USER} --gid {RUN_AS_USER} \\
    --home-dir {_HOME} --create-home shipyard

# Dependencies first: a new model version with the same pins reuses this layer.
{copy_wheels}COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

# Owned by root, so the serving process cannot alter the model it serves.
COPY model/ {MODEL_DIR}/

WORKDIR {_HOME}
USER {RUN_AS_USER}:{RUN_AS_USER}
EXPOSE {SERVE_PORT}
# python:*-slim has no curl; the standard library makes the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \\
    CMD {json.dumps(["python", "-c", health])}
ENTRYPOINT {json.dumps(entrypoint)}
"""


def _dockerignore() -> str:
    patterns = [f"**/{pattern}" for pattern in _IGNORED]
    return (
        "# The context holds only what the image needs; keep caches out.\n"
        + "\n".join(patterns)
        + "\n"
    )
