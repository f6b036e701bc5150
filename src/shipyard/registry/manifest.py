"""The package manifest: ``shipyard.json`` at the root of every model package.

It says what the package is (name, version, flavor), how to call it (the
signature), what it needs (the environment), where it came from (run, data
fingerprint, metrics, params) and what it holds: every file with its SHA-256,
checked before anything is loaded.

Example:
    >>> m = Manifest(name="iris", version=None, flavor="sklearn", signature={}, environment={})
    >>> m.format_version, m.created_at.tzinfo is not None
    (1, True)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shipyard.clock import utc_now
from shipyard.errors import ManifestError

MANIFEST_NAME = "shipyard.json"
FORMAT_VERSION = 1


class FileEntry(BaseModel):
    """One file of the package: its SHA-256 (hex) and size in bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(BaseModel):
    """Everything Shipyard knows about one model package.

    ``files`` maps POSIX paths relative to the package root to their checksums;
    the manifest itself is not listed. Unknown keys are ignored so that a newer
    writer can add fields without breaking older readers; incompatible changes
    bump ``format_version``, which readers check.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    format_version: int = FORMAT_VERSION
    name: str = Field(min_length=1)
    version: int | None = None
    flavor: str = Field(min_length=1)
    flavor_options: dict[str, Any] = Field(default_factory=dict)
    signature: dict[str, Any]
    environment: dict[str, Any]
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    data_fingerprint: dict[str, Any] | None = None
    run_id: str | None = None
    # The feature-store features the model was trained on (references, view
    # versions, join keys, request fields): a server fetches them by entity key.
    features: dict[str, Any] | None = None
    files: dict[str, FileEntry] = Field(default_factory=dict)
    trusted_pickle: bool = False
    created_at: datetime = Field(default_factory=utc_now)
    description: str | None = None

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(
                f"unknown format_version {value}; this Shipyard reads format_version "
                f"{FORMAT_VERSION}. Upgrade Shipyard to read packages written by a newer one."
            )
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Naive datetimes are taken to be UTC; everything is stored in UTC.
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        # JSON has no NaN/inf: they would not survive a round trip through the file.
        bad = sorted(k for k, v in value.items() if not math.isfinite(v))
        if bad:
            raise ValueError(f"metrics must be finite numbers; {bad} are NaN or infinite")
        return value

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, value: dict[str, FileEntry]) -> dict[str, FileEntry]:
        # A manifest is read before anything is verified: refuse paths that would
        # make checksum verification look outside the package.
        for rel in value:
            p = PurePosixPath(rel)
            if p.is_absolute() or ".." in p.parts or "\\" in rel or rel in ("", "."):
                raise ValueError(f"file path {rel!r} must be relative and inside the package")
            if rel == MANIFEST_NAME:
                raise ValueError(f"{MANIFEST_NAME} must not list itself")
        return value

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        """Read a manifest file (or the ``shipyard.json`` inside a package folder).

        Raises :class:`ManifestError` naming the file if it is missing, not JSON,
        of an unknown ``format_version`` or otherwise invalid.
        """
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ManifestError(
                f"No manifest at {path}: a model package has a {MANIFEST_NAME} at its root. "
                "Is this the right folder, and was the package written completely?"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"Cannot read manifest {path}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"Manifest {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError(f"Manifest {path} must hold a JSON object, got {type(data)}.")
        if "format_version" not in data:
            raise ManifestError(f"Manifest {path} has no format_version; it is not a package.")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ManifestError(f"Manifest {path} is invalid: {problems}") from exc

    def dump(self, path: Path | str) -> Path:
        """Write the manifest atomically (temp file + rename); returns the path written.

        A folder means ``<folder>/shipyard.json``. Readers never see half a file.
        """
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        text = self.model_dump_json(indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "FileEntry", "Manifest"]
