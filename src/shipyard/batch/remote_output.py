"""A parallel job's output on S3: staged under a hidden prefix, published with ``_SUCCESS`` last.

S3 has no rename, so the local recipe (stage in a folder, rename it into place)
does not carry over. Instead:

1. Workers write each partition to their local disk, then upload it under a
   hidden staging prefix beside the output,
   ``s3://bucket/.scores.shipyard-<token>.tmp/part-00003.<attempt>.parquet``
   (one upload is one PUT or one multipart upload: S3 shows the object only once
   it is complete, so a worker killed mid-upload leaves nothing).
2. Once every partition is back, the driver removes the old dataset's
   ``_SUCCESS`` first, then its other objects, copies the kept attempts
   to their final keys (``scores/part-00003.parquet``, server-side copies),
   and writes ``_SUCCESS`` **last**, holding a JSON manifest of the files and
   row counts. The staging prefix is then deleted.
3. A job that fails before publishing deletes its staging prefix and leaves the
   old output untouched.

The guarantee: when ``scores/_SUCCESS`` exists, the files it lists are complete
and all from the job that wrote it. While a job publishes (or if its driver is
killed during those few seconds) the output has no ``_SUCCESS``: readers that
wait for it, as Spark, Dask and ``shipyard`` itself do, never see a partial
dataset; a reader that lists the prefix without looking for ``_SUCCESS`` may.
A driver killed before step 2 leaves its hidden staging prefix behind (no
process on S3 can tell that the job is gone); delete ``.<name>.shipyard-*.tmp/``.

``--single-file`` writes one object with one upload, which replaces the old
object atomically.

Example:
    >>> is_remote("s3://bucket/scores"), is_remote("scores/")
    (True, False)
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from shipyard.errors import InvalidInputError, StoreError, reason

#: Marker file of a complete output dataset (the convention Spark and Dask follow).
SUCCESS_FILE = "_SUCCESS"


def is_remote(location: str | Path) -> bool:
    """Whether ``location`` is an ``s3://`` URL (a parallel job's remote output)."""
    return str(location).lower().startswith(("s3://", "s3a://"))


def check_remote_url(url: str) -> None:
    """Fail at once on an ``s3://`` output that names no prefix inside a bucket
    (``s3://bucket`` or ``s3://``), before any scoring starts."""
    bucket, _, key = url.split("://", 1)[1].partition("/")
    if not bucket or not key.strip("/"):
        raise InvalidInputError(
            f"--output {url!r}: name a prefix inside a bucket, e.g. s3://bucket/scores/."
        )


class RemoteOutput:
    """The output of a parallel job at an ``s3://`` URL, and its staging prefix.

    ``storage_options`` go to fsspec (for s3fs: the endpoint); credentials come
    from the usual AWS environment variables and files.
    """

    def __init__(self, url: str, storage_options: dict[str, Any]) -> None:
        from shipyard.store.filesystems import open_filesystem

        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options)
        self.fs, root = open_filesystem(self.url, self.storage_options, what="batch output")
        self.root = root.rstrip("/")
        parent, _, name = self.root.rpartition("/")
        if not parent or not name:
            raise InvalidInputError(
                f"--output {url!r}: name a prefix inside a bucket, e.g. s3://bucket/scores/."
            )
        self.parent, self.name = parent, name

    # -- staging --------------------------------------------------------------------
    def new_staging(self) -> str:
        """A fresh hidden staging prefix beside the output (a URL; S3 needs no folder)."""
        token = secrets.token_hex(6)
        return self.fs.unstrip_protocol(f"{self.parent}/.{self.name}.shipyard-{token}.tmp")

    def discard(self, staging: str) -> None:
        """Delete the staging prefix and everything under it (never raises)."""
        with contextlib.suppress(*_backend_errors()):
            self.fs.rm(self._path(staging), recursive=True)

    @contextlib.contextmanager
    def open_staged(self, staging: str, name: str) -> Iterator[IO[bytes]]:
        """One staged file, for reading (merging rejects, joining a single file)."""
        with self.fs.open(f"{self._path(staging)}/{name}", "rb") as handle:
            yield handle

    def staged_names(self, staging: str) -> list[str]:
        """Every object under the staging prefix, relative to it."""
        base = self._path(staging)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        return [str(p)[len(base) + 1 :] for p in found]

    # -- publishing -----------------------------------------------------------------
    def publish_dataset(
        self, staging: str, files: Sequence[tuple[str, str, int]], *, job: dict[str, Any]
    ) -> None:
        """Replace the output by the staged ``files`` (staged name, final name, rows).

        The old ``_SUCCESS`` goes first and the new one comes last (see the module doc).
        """
        base = self._path(staging)
        try:
            success = f"{self.root}/{SUCCESS_FILE}"
            if self.fs.exists(success):
                self.fs.rm(success)
            if self.fs.exists(self.root):
                self.fs.rm(self.root, recursive=True)
            for staged, final, _ in files:
                self.fs.copy(f"{base}/{staged}", f"{self.root}/{final}")
            manifest = {
                **job,
                "files": [{"path": final, "rows": rows} for _, final, rows in files],
                "rows": sum(rows for _, _, rows in files),
            }
            self.fs.pipe_file(success, json.dumps(manifest, indent=1).encode())
            self.fs.invalidate_cache()
        except _backend_errors() as exc:
            raise StoreError(
                f"Could not publish the output {self.url}: {reason(exc)}. "
                f"It has no {SUCCESS_FILE}, so no reader takes it for complete; run the job again."
            ) from exc

    def publish_file(self, local: Path) -> None:
        """Upload one local file as the output object (one upload: atomic on S3)."""
        try:
            self.fs.put_file(str(local), self.root)
        except _backend_errors() as exc:
            raise StoreError(f"Could not upload the output {self.url}: {exc}") from exc

    def _path(self, url: str) -> str:
        return str(self.fs._strip_protocol(url)).rstrip("/")


def upload(local: Path, url: str, storage_options: dict[str, Any]) -> None:
    """Upload a worker's finished partition file to its staging URL."""
    from shipyard.store.filesystems import open_filesystem

    fs, path = open_filesystem(url, storage_options, what="batch staging area")
    try:
        fs.put_file(str(local), path)
    except _backend_errors() as exc:
        raise StoreError(f"Could not upload a scored partition to {url}: {exc}") from exc


def _backend_errors() -> tuple[type[Exception], ...]:
    """What S3 raises (imported late: botocore is slow to import, and ``shipyard predict``
    imports this module even for local outputs)."""
    from shipyard.store.filesystems import BACKEND_ERRORS

    return BACKEND_ERRORS


__all__ = ["SUCCESS_FILE", "RemoteOutput", "check_remote_url", "is_remote", "upload"]
