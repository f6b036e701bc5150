"""Files a run keeps: plots, tables, notes, configs, whole folders.

Every artifact is a blob of the content-addressed artifact store (local folder
or S3), so its SHA-256 is checked on every read, exactly like model files; the
run records only *path -> digest*. The same bytes kept by a thousand runs are
stored once.

>>> with shipyard.start_run("iris") as run:                      # doctest: +SKIP
...     run.log_figure(fig, "confusion.png")
...     run.log_table(errors, "errors.parquet")
...     run.log_dict({"C": 1.0}, "config.json")
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.store import records
from shipyard.store.run_store import RunStore

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.store.artifacts import ArtifactStore

__all__ = ["RunArtifacts", "artifact_kind", "check_artifact_path", "read_artifact"]

_KINDS = {
    "image": {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"},
    "table": {".parquet", ".csv", ".jsonl"},
    "text": {".txt", ".md", ".log", ".html", ".py", ".rst"},
    "json": {".json", ".yaml", ".yml"},
}
_TABLE_FORMATS = (".parquet", ".csv", ".json", ".jsonl")
_FIGURE_FORMATS = (".png", ".jpg", ".jpeg", ".svg", ".pdf")


def artifact_kind(path: str) -> str:
    """What a path holds, by its extension: image, table, text, json or file."""
    suffix = PurePosixPath(path).suffix.lower()
    return next((kind for kind, suffixes in _KINDS.items() if suffix in suffixes), "file")


def check_artifact_path(path: str) -> str:
    """A relative POSIX path inside the run; InvalidInputError naming it otherwise."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidInputError(
            f"Artifact path {path!r}: expected a relative path like 'plots/a.png'."
        )
    clean = PurePosixPath(path.replace("\\", "/"))
    if clean.is_absolute() or ".." in clean.parts or str(clean) in ("", "."):
        raise InvalidInputError(
            f"Artifact path {path!r} must be relative and stay inside the run "
            "(no leading '/', no '..'), e.g. 'plots/confusion.png'."
        )
    if len(str(clean)) > 1024:
        raise InvalidInputError(f"Artifact path {path[:60]!r}... is longer than 1024 characters.")
    return str(clean)


class RunArtifacts:
    """Stores the files of one run in the artifact store and records them with the run."""

    def __init__(self, runs: RunStore, store: ArtifactStore, run_id: str) -> None:
        self.runs = runs
        self.store = store
        self.run_id = run_id

    def log_bytes(self, data: bytes, path: str, *, kind: str | None = None) -> records.RunArtifact:
        path = check_artifact_path(path)
        digest = self.store.put_bytes(data)
        return self.runs.add_artifact(
            self.run_id, path, digest=digest, size=len(data), kind=kind or artifact_kind(path)
        )

    def log_file(
        self, local: str | os.PathLike[str], artifact_path: str | None = None
    ) -> records.RunArtifact:
        source = Path(local)
        if not source.is_file():
            raise InvalidInputError(f"Cannot log artifact {source}: it is not a file.")
        path = _join(artifact_path, source.name)
        digest = self.store.put_file(source)
        return self.runs.add_artifact(
            self.run_id, path, digest=digest, size=source.stat().st_size, kind=artifact_kind(path)
        )

    def log_folder(
        self, local: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[records.RunArtifact]:
        folder = Path(local)
        if not folder.is_dir():
            raise InvalidInputError(f"Cannot log artifacts from {folder}: it is not a folder.")
        logged = []
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = file.relative_to(folder).as_posix()
            target = _join(artifact_path, relative)
            digest = self.store.put_file(file)
            logged.append(
                self.runs.add_artifact(
                    self.run_id,
                    target,
                    digest=digest,
                    size=file.stat().st_size,
                    kind=artifact_kind(target),
                )
            )
        return logged

    def log_figure(self, figure: Any, path: str) -> records.RunArtifact:
        # Duck-typed on savefig: matplotlib is never imported here, only by the caller.
        suffix = PurePosixPath(path).suffix.lower()
        if suffix not in _FIGURE_FORMATS:
            raise InvalidInputError(
                f"Figure path {path!r}: expected one of {', '.join(_FIGURE_FORMATS)}."
            )
        if not callable(getattr(figure, "savefig", None)):
            raise InvalidInputError(
                "log_figure expects a matplotlib Figure (with savefig), "
                f"got {type(figure).__name__}."
            )
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix.lstrip("."), bbox_inches="tight")
        return self.log_bytes(buffer.getvalue(), path, kind="image")

    def log_table(self, frame: pd.DataFrame, path: str) -> records.RunArtifact:
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise InvalidInputError(
                f"log_table expects a pandas DataFrame, got {type(frame).__name__}."
            )
        suffix = PurePosixPath(path).suffix.lower()
        buffer = io.BytesIO()
        if suffix not in (".parquet", ".csv", ".json", ".jsonl"):
            raise InvalidInputError(
                f"Table path {path!r}: expected one of {', '.join(_TABLE_FORMATS)}."
            )
        try:
            if suffix == ".parquet":
                frame.to_parquet(buffer, index=False)
            elif suffix == ".csv":
                frame.to_csv(buffer, index=False)
            else:
                frame.to_json(buffer, orient="records", lines=True, date_format="iso")
        except (ValueError, TypeError, ArithmeticError) as exc:  # pyarrow's ArrowInvalid too
            raise InvalidInputError(
                f"Table {path!r} cannot be written as {suffix.lstrip('.')}: {exc} (a column "
                "mixing types, e.g. numbers and text, can be cast with astype first)."
            ) from exc
        return self.log_bytes(buffer.getvalue(), path, kind="table")

    def log_text(self, text: str, path: str) -> records.RunArtifact:
        if not isinstance(text, str):
            raise InvalidInputError(f"log_text expects a str, got {type(text).__name__}.")
        return self.log_bytes(text.encode("utf-8"), path, kind="text")

    def log_dict(self, data: dict[str, Any], path: str) -> records.RunArtifact:
        if not isinstance(data, dict):
            raise InvalidInputError(f"log_dict expects a dict, got {type(data).__name__}.")
        suffix = PurePosixPath(path).suffix.lower()
        if suffix in (".yaml", ".yml"):
            import yaml

            try:
                text = yaml.safe_dump(data, sort_keys=False)
            except yaml.YAMLError as exc:  # e.g. a numpy number: YAML has no tag for it
                raise InvalidInputError(
                    f"Dict {path!r} cannot be written as YAML ({exc.__class__.__name__}: "
                    f"{str(exc).splitlines()[0]}); use plain Python values, or a .json path."
                ) from exc
        elif suffix == ".json":
            text = json.dumps(data, indent=2, default=str)
        else:
            raise InvalidInputError(f"Dict path {path!r}: expected a .json, .yaml or .yml file.")
        return self.log_bytes(text.encode("utf-8"), path, kind="json")


def download(
    runs: RunStore, store: ArtifactStore, run_id: str, dest: Path
) -> list[tuple[records.RunArtifact, Path]]:
    """Write every artifact of ``run_id`` under ``dest`` (verified); return where each went."""
    written = []
    for artifact in runs.list_artifacts(run_id):
        target = dest / check_artifact_path(artifact.path)
        store.get_file(artifact.digest, target)
        written.append((artifact, target))
    return written


def read_artifact(
    runs: RunStore, store: ArtifactStore, run_id: str, path: str
) -> tuple[records.RunArtifact, bytes]:
    """The artifact ``path`` of run ``run_id`` and its bytes (checksum verified).

    Only a path the run itself recorded is read: any other path, ``..`` included,
    is a NotFoundError naming the run, so a caller cannot reach another run's blobs.
    """
    wanted = check_artifact_path(path)
    for artifact in runs.list_artifacts(run_id):
        if artifact.path == wanted:
            return artifact, store.get_bytes(artifact.digest)
    raise NotFoundError(f"Run {run_id} has no artifact {wanted!r}.")


def _join(prefix: str | None, name: str) -> str:
    return check_artifact_path(f"{prefix.rstrip('/')}/{name}" if prefix else name)
