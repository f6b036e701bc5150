"""What a serving image needs besides the model: Shipyard itself, pinned.

The model's manifest pins the packages the model was saved with; the server
also needs Shipyard and everything Shipyard imports. Both sets are pinned to
the versions installed here, so the image runs what was tested. Shipyard is
not on a public index under that name, so it travels as a wheel built from
the installed source.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError
from shipyard.registry.environment import canonical_name, capture_environment


def serving_environment(model_environment: dict[str, Any]) -> dict[str, Any]:
    """The model's pins plus Shipyard's own runtime closure (the model's pins win)."""
    runtime = capture_environment(["shipyard"])["packages"]
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
