"""What a serving image needs besides the model: Shipyard itself, pinned.

The model's manifest pins the packages the model was saved with; the server
also needs Shipyard, everything Shipyard imports, and the optional extras the
model's flavor needs (``shipyard[xgboost]`` for an XGBoost model; a plain
scikit-learn model needs none). All are pinned to the versions installed
here, so the image runs what was tested. Shipyard is not on a public index
under that name, so it travels as a wheel built from the installed source.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from shipyard.errors import ConfigError, InvalidInputError
from shipyard.extras import EXTRA_MODULES, FLAVOR_EXTRAS, require_extra
from shipyard.registry.environment import canonical_name, capture_environment


def image_extras(flavor: str, wanted: Iterable[str] = ()) -> list[str]:
    """The extras an image serving a ``flavor`` model needs, plus ``wanted`` ones (sorted).

    Raises :class:`InvalidInputError` for an extra Shipyard does not have.
    """
    extras = set(wanted)
    unknown = sorted(extras - set(EXTRA_MODULES))
    if unknown:
        raise InvalidInputError(
            f"Unknown extra {', '.join(unknown)}; Shipyard's extras are "
            f"{', '.join(sorted(EXTRA_MODULES))}."
        )
    if flavor in FLAVOR_EXTRAS:
        extras.add(FLAVOR_EXTRAS[flavor])
    return sorted(extras)


def _extra_distributions(extra: str) -> list[str]:
    """The distributions Shipyard's ``extra`` adds (from its installed metadata)."""
    names = []
    for text in metadata.distribution("shipyard").requires or []:
        requirement = Requirement(text)
        marker = requirement.marker
        # Required with this extra and not without it (not a core dependency).
        if (
            marker is not None
            and marker.evaluate({"extra": extra})
            and not marker.evaluate({"extra": ""})
        ):
            names.append(requirement.name)
    return names


def serving_environment(
    model_environment: dict[str, Any], extras: Iterable[str] = ()
) -> dict[str, Any]:
    """The model's pins plus Shipyard's own runtime closure and that of ``extras``
    (the model's pins win)."""
    for extra in extras:
        require_extra(extra, f"an image with shipyard[{extra}]")
    wanted = [name for extra in extras for name in _extra_distributions(extra)]
    runtime = capture_environment(["shipyard", *wanted])["packages"]
    runtime.pop("shipyard", None)
    packages = {
        **runtime,
        **{canonical_name(k): v for k, v in model_environment["packages"].items()},
    }
    return {"python": model_environment["python"], "packages": dict(sorted(packages.items()))}


def shipyard_source() -> Path:
    """The folder Shipyard was installed from (an editable or local install)."""
    dist = metadata.distribution("shipyard")
    raw = dist.read_text("direct_url.json")
    url = json.loads(raw).get("url", "") if raw else ""
    if not url.startswith("file://"):
        raise ConfigError(
            "Shipyard was installed from a package index, so there is no source to build "
            "its wheel from; pass --shipyard-requirement 'shipyard==VERSION' (or a wheel "
            "URL) that your image's index can serve."
        )
    return Path(url.removeprefix("file://"))


def build_shipyard_wheel(dest: Path) -> Path:
    """Build a wheel of the installed Shipyard source into ``dest``."""
    source = shipyard_source()
    dest.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if Path(uv).exists():
        command = [uv, "build", "--wheel", "--out-dir", str(dest), str(source)]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("shipyard-*.whl"))
    if result.returncode != 0 or not wheels:
        raise ConfigError(
            f"Could not build a Shipyard wheel from {source}: {result.stderr.strip()[-800:]}"
        )
    return wheels[-1]


def with_extras(requirement: str, extras: Iterable[str]) -> str:
    """``shipyard @ URL`` -> ``shipyard[xgboost] @ URL``; a requirement naming extras is kept.

    >>> with_extras("shipyard==0.1.0", ["xgboost"])
    'shipyard[xgboost]==0.1.0'
    """
    chosen = sorted(extras)
    text = requirement.strip()
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)
    if not chosen or name is None or text[name.end() :].lstrip().startswith("["):
        return text
    return f"{text[: name.end()]}[{','.join(chosen)}]{text[name.end() :]}"
