"""The shipyard.json manifest: validation, load errors naming the file, atomic dump."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shipyard.errors import ManifestError
from shipyard.registry.manifest import MANIFEST_NAME, FileEntry, Manifest

DIGEST = "a" * 64


def _manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "name": "iris",
        "version": 3,
        "flavor": "sklearn",
        "flavor_options": {"format": "skops", "file": "model.skops"},
        "signature": {"inputs": [], "output": {}},
        "environment": {"python": "3.11.7", "packages": {"numpy": "2.0.0"}},
        "metrics": {"accuracy": 0.96},
        "params": {"C": "1.0"},
        "files": {"model/model.skops": FileEntry(sha256=DIGEST, size=10)},
    }
    fields.update(overrides)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    manifest = _manifest(description="iris classifier", run_id="r1")
    written = manifest.dump(tmp_path)
    assert written == tmp_path / MANIFEST_NAME
    assert json.loads(written.read_text())["format_version"] == 1
    assert Manifest.load(tmp_path) == manifest
    assert Manifest.load(written) == manifest
    # The atomic write leaves no temporary file behind.
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]


def test_created_at_is_utc() -> None:
    assert _manifest().created_at.tzinfo == UTC
    paris = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert _manifest(created_at=paris).created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert _manifest(created_at=datetime(2024, 5, 1)).created_at.tzinfo == UTC


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    expected = re.escape(f"No manifest at {tmp_path / MANIFEST_NAME}")
    with pytest.raises(ManifestError, match=expected):
        Manifest.load(tmp_path)


def test_load_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text("{not json")
    with pytest.raises(ManifestError, match=re.escape(f"Manifest {path} is not valid JSON")):
        Manifest.load(path)


def test_load_unknown_format_version(tmp_path: Path) -> None:
    data = json.loads(_manifest().model_dump_json())
    data["format_version"] = 2
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"unknown format_version 2.*Upgrade Shipyard") as info:
        Manifest.load(tmp_path)
    assert str(tmp_path / MANIFEST_NAME) in str(info.value)


def test_load_missing_fields_lists_them(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format_version": 1, "name": "x"}))
    with pytest.raises(ManifestError, match="flavor: Field required"):
        Manifest.load(tmp_path)


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    data = json.loads(_manifest().model_dump_json()) | {"added_later": True}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    assert Manifest.load(tmp_path).name == "iris"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", "model/../../x", MANIFEST_NAME])
def test_file_paths_must_stay_inside(tmp_path: Path, bad: str) -> None:
    data = json.loads(_manifest().model_dump_json())
    data["files"] = {bad: {"sha256": DIGEST, "size": 1}}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="files"):
        Manifest.load(tmp_path)


def test_bad_checksum_and_metrics_are_refused() -> None:
    with pytest.raises(ValueError, match="sha256"):
        FileEntry(sha256="xyz", size=1)
    with pytest.raises(ValueError, match="finite"):
        _manifest(metrics={"loss": float("nan")})
