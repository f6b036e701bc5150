"""Pipeline versions: what a run ran, recorded so it can be run again and compared.

A pipeline version is the entry point, the SHA-256 of its source files, the
loop config, the params and seeds, the Python environment (the same pinned
list a model package records) and the data snapshot versions it read. The
loop records one for every retrain; any run can record one by naming its
entry point (:func:`record_pipeline`).

Which files are "its source": the entry point's module and, when that module
lives under the pipeline's ``code_path`` (by default the loop config's
folder), every ``.py`` file under that folder, because a ``train.py`` usually
imports its neighbours. A module from an installed package is hashed alone.

>>> code = hash_sources("shipyard.loop.examples:train_iris")
>>> list(code.files) == ["shipyard/loop/examples.py"] and len(code.digest) == 64
True
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.data.refs import parse_data_ref
from shipyard.errors import ConfigError, InvalidInputError, NotFoundError
from shipyard.registry.environment import capture_environment
from shipyard.store.data_records import PipelineRecord
from shipyard.store.dataset_store import DatasetStore

#: Packages every pipeline environment pins besides numpy and pandas.
PIPELINE_PACKAGES = ["scikit-learn", "pyarrow"]
_SKIP_DIRS = {"__pycache__", ".venv", "venv", ".git", "node_modules", ".tox"}
_MAX_FILES = 500


@dataclass(frozen=True)
class SourceHash:
    """The digest over ``files`` (relative path -> SHA-256 of its bytes)."""

    digest: str
    files: dict[str, str]


def _module_file(spec: str, code_path: str | Path | None) -> Path:
    module_name = spec.partition(":")[0]
    import sys

    added = False
    folder = str(Path(code_path).resolve()) if code_path is not None else None
    if folder is not None and folder not in sys.path:
        sys.path.insert(0, folder)
        added = True
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"Cannot find the module of entry point {spec!r}: {exc}") from exc
    finally:
        if added and folder is not None:
            sys.path.remove(folder)
    if found is None or found.origin is None or not found.origin.endswith(".py"):
        raise ConfigError(
            f"Cannot find the source file of entry point {spec!r}; a pipeline must be "
            "Python source (a .py file) to be versioned."
        )
    return Path(found.origin).resolve()


def hash_sources(spec: str, code_path: str | Path | None = None) -> SourceHash:
    """Hash the source files of entry point ``spec`` (see the module doc)."""
    module = _module_file(spec, code_path)
    root = Path(code_path).resolve() if code_path is not None else None
    files: dict[str, str] = {}
    if root is not None and module.is_relative_to(root):
        for path in sorted(root.rglob("*.py")):
            if _SKIP_DIRS & set(path.relative_to(root).parts):
                continue
            files[path.relative_to(root).as_posix()] = _sha256(path)
            if len(files) > _MAX_FILES:
                raise ConfigError(
                    f"The pipeline folder {root} holds over {_MAX_FILES} Python files; point "
                    "`pipeline.code_path` at the folder of the training code only."
                )
    else:
        # An installed module: name it by its dotted path, not by where it is installed.
        name = spec.partition(":")[0].replace(".", "/") + ".py"
        files[name] = _sha256(module)
    digest = hashlib.sha256()
    for name, file_hash in sorted(files.items()):
        digest.update(f"{name}\0{file_hash}\n".encode())
    return SourceHash(digest.hexdigest(), files)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pipeline_environment() -> dict[str, Any]:
    """The pinned environment, as a model package records it."""
    return capture_environment([p for p in PIPELINE_PACKAGES if _installed(p)])


def _installed(name: str) -> bool:
    import importlib.metadata as md

    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        return False
    return True


def record_pipeline(
    datasets: DatasetStore,
    run_id: str,
    *,
    entry_point: str,
    params: Mapping[str, Any],
    code_path: str | Path | None = None,
    seed: Any = None,
    snapshots: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> PipelineRecord:
    """Record the pipeline version run ``run_id`` ran; return it.

    ``snapshots`` maps a context (``training``, ``holdout``) to a dataset
    reference. A bare ``NAME`` is pinned here to an exact version (the one this
    run logged reading, else the newest): a record that said only ``NAME`` would
    re-read whatever is newest when reproduced. Each is recorded as read by the run.

    Example:
        >>> record_pipeline(client.datasets, run.id, entry_point="train:fit",  # doctest: +SKIP
        ...                 params={"C": 1.0, "target": "churn"}, code_path=".", seed=42,
        ...                 snapshots={"training": "visits:3"})
    """
    pinned = pin_snapshots(datasets, run_id, snapshots or {})
    code = hash_sources(entry_point, code_path)
    record = PipelineRecord(
        run_id=run_id,
        entry_point=entry_point,
        code_hash=code.digest,
        record={
            "files": code.files,
            "code_path": None if code_path is None else str(Path(code_path).resolve()),
            "params": dict(params),
            "seed": seed,
            "snapshots": pinned,
            "config": dict(config or {}),
            "environment": pipeline_environment(),
            **dict(extra or {}),
        },
    )
    datasets.save_pipeline(record)
    for context, ref in pinned.items():
        name, _, number = ref.rpartition(":")
        datasets.record_use(name, int(number), run_id, context)
    return record


def pin_snapshots(
    datasets: DatasetStore, run_id: str, snapshots: Mapping[str, str]
) -> dict[str, str]:
    """Each context's reference as ``NAME:VERSION`` of a version that exists.

    A bare ``NAME`` becomes the version of it this run recorded reading (if just
    one), else its newest. An unknown dataset or version is an error naming it.
    """
    used = datasets.uses_of_run(run_id)
    pinned: dict[str, str] = {}
    for context, ref in snapshots.items():
        try:
            name, number = parse_data_ref(ref)
        except InvalidInputError as exc:
            raise InvalidInputError(f"snapshots[{context!r}]: {exc}") from exc
        if number is None:
            mine = {u.version for u in used if u.dataset == name}
            number = mine.pop() if len(mine) == 1 else None
        try:
            version = datasets.get_version(name, number)
        except NotFoundError as exc:
            raise InvalidInputError(
                f"snapshots[{context!r}] names {ref!r}, which is not stored: {exc} "
                "Snapshot the data first (run.log_dataset(df, snapshot=True) or "
                "`shipyard data snapshot`)."
            ) from exc
        pinned[str(context)] = f"{version.dataset}:{version.version}"
    return pinned


__all__ = [
    "PIPELINE_PACKAGES",
    "SourceHash",
    "hash_sources",
    "pin_snapshots",
    "pipeline_environment",
    "record_pipeline",
]
