"""Content-addressed artifact store: bytes in, SHA-256 digest out, checked on every read.

A blob lives at ``<root>/blobs/<first two hex digits>/<digest>``, so the same
bytes are stored once however many model versions use them, and a blob can
never silently change: every read hashes what it got and raises
:class:`~shipyard.errors.IntegrityError` if the digest no longer matches.

Two backends implement the :class:`ArtifactStore` protocol: a local folder
(:class:`LocalArtifactStore`) and any fsspec URL, used for ``s3://``
(:class:`FsspecArtifactStore`). :func:`open_artifact_store` picks one from
:class:`~shipyard.config.Settings`.

>>> import tempfile
>>> store = LocalArtifactStore(Path(tempfile.mkdtemp()))
>>> digest = store.put_bytes(b"hello")
>>> digest == sha256_bytes(b"hello")
True
>>> store.get_bytes(digest)
b'hello'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from shipyard.config import Settings
from shipyard.errors import (
    ArtifactNotFoundError,
    ConfigError,
    IntegrityError,
    InvalidInputError,
    StoreError,
    reason,
)
from shipyard.store.filesystems import BACKEND_ERRORS, BOTO_ERRORS, open_filesystem

__all__ = [
    "ArtifactStore",
    "BlobBatch",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "open_artifact_store",
    "sha256_bytes",
    "sha256_file",
]

# Read and hash in 1 MiB pieces: large enough to keep syscalls cheap, small
# enough that a multi-gigabyte model never sits in memory.
_CHUNK = 1 << 20
# Upload part size for object stores. S3 needs parts of at least 5 MiB; 8 MiB
# keeps memory per upload bounded while a 1 GB file still needs only ~128 parts.
_PART = 8 << 20
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_SUPPORTED = "a folder path, a file:// URL or an s3://bucket/prefix URL"
_BACKEND_ERRORS = BACKEND_ERRORS


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    >>> sha256_bytes(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in chunks (never whole).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p) == sha256_bytes(b"abc")
    True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in _chunks(handle):
            digest.update(chunk)
    return digest.hexdigest()


@runtime_checkable
class ArtifactStore(Protocol):
    """Where artifact bytes live, addressed by their SHA-256.

    ``url`` says where the store is (for messages and the audit log). Every
    method that takes a digest rejects anything but 64 lowercase hex digits
    with :class:`~shipyard.errors.InvalidInputError`; reads of an absent digest
    raise :class:`~shipyard.errors.ArtifactNotFoundError`, reads of changed
    bytes :class:`~shipyard.errors.IntegrityError`, and backend failures
    :class:`~shipyard.errors.StoreError`.

    >>> def copy(src: ArtifactStore, dst: ArtifactStore, digest: str) -> str:
    ...     return dst.put_bytes(src.get_bytes(digest))
    """

    url: str

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its digest. Storing known bytes again is a no-op."""
        ...

    def put_file(self, path: Path) -> str:
        """Store the file at ``path`` without reading it whole; return its digest."""
        ...

    def get_bytes(self, digest: str) -> bytes:
        """Return the verified bytes stored under ``digest``."""
        ...

    def get_file(self, digest: str, dest: Path) -> Path:
        """Write the verified blob to ``dest`` atomically; return ``dest``."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether a blob is stored under ``digest``."""
        ...

    def delete(self, digest: str) -> None:
        """Remove the blob; raise ArtifactNotFoundError if there is none."""
        ...

    def batch(self) -> BlobBatch:
        """A batch of blobs published together (see :class:`BlobBatch`)."""
        ...


class BlobBatch(Protocol):
    """Blobs stored as one unit: each is durable under its digest once the batch commits.

    Used as a context manager: leaving the block normally commits (every blob added is
    then stored in full under its digest, and on local disk synced, before the caller
    records anything that lists them); an error discards what was added and not yet
    stored. ``add`` may be called from several threads at once.

    >>> def store_all(store: ArtifactStore, blobs: list[bytes]) -> list[str]:
    ...     with store.batch() as batch:
    ...         digests = [sha256_bytes(b) for b in blobs]
    ...         for data, digest in zip(blobs, digests):
    ...             batch.add(data, digest)
    ...     return digests  # all stored and durable here
    """

    def add(self, data: bytes, digest: str) -> None:
        """Add ``data``, whose SHA-256 the caller computed as ``digest``.

        The digest is not computed again (the caller just did: hashing every chunk
        twice cost a snapshot 0.07 s); a wrong one cannot go unnoticed, since every
        read checks the bytes against their digest.
        """
        ...

    def __enter__(self) -> BlobBatch: ...

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None: ...


class LocalArtifactStore:
    """Artifact store in a plain folder; creates its folders on first write.

    Writes go to a temporary file beside the blobs and are renamed into place,
    so a reader sees either nothing or the whole blob, even after a crash.

    >>> import tempfile
    >>> store = LocalArtifactStore(Path(tempfile.mkdtemp()) / "artifacts")
    >>> store.exists(sha256_bytes(b"x"))
    False
    """

    def __init__(self, root: Path) -> None:
        # absolute() only consults the working directory; nothing touches the disk.
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    def _blob(self, digest: str) -> Path:
        digest = _check_digest(digest)
        return self.root / "blobs" / digest[:2] / digest

    def put_bytes(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        target = self._blob(digest)
        if target.is_file():
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with _atomic_writer(target) as handle:
                handle.write(data)
        except OSError as exc:
            raise StoreError(f"Could not write artifact {digest} to {self.url}: {exc}") from exc
        return digest

    def put_file(self, path: Path) -> str:
        staging = self.root / "blobs"
        source = _open_source(path, self.url)
        # The digest is only known once every byte was read, so the temporary
        # file sits in blobs/ (same filesystem as its final shard folder, so
        # the rename stays atomic) and the bytes are hashed as they are copied:
        # the digest describes exactly what was written, even if the source
        # changes meanwhile.
        tmp: Path | None = None
        try:
            with source:
                staging.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=staging)
                tmp = Path(tmp_name)
                with os.fdopen(fd, "wb") as out:
                    hasher = hashlib.sha256()
                    for chunk in _chunks(source):
                        hasher.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            digest = hasher.hexdigest()
            target = self._blob(digest)
            if target.is_file():
                tmp.unlink()
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)
        except OSError as exc:
            raise StoreError(f"Could not store {path} in {self.url}: {exc}") from exc
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return digest

    def get_bytes(self, digest: str) -> bytes:
        target = self._blob(digest)
        try:
            data = target.read_bytes()
        except FileNotFoundError as exc:
            raise _not_found(digest, self.url) from exc
        except OSError as exc:
            raise StoreError(f"Could not read artifact {digest} from {self.url}: {exc}") from exc
        _verify(digest, sha256_bytes(data), target.as_uri())
        return data

    def get_file(self, digest: str, dest: Path) -> Path:
        target = self._blob(digest)
        try:
            source = open(target, "rb")  # noqa: SIM115 - closed by _copy_verified
        except FileNotFoundError as exc:
            raise _not_found(digest, self.url) from exc
        except OSError as exc:
            raise StoreError(f"Could not read artifact {digest} from {self.url}: {exc}") from exc
        return _copy_verified(source, digest, target.as_uri(), Path(dest))

    def exists(self, digest: str) -> bool:
        return self._blob(digest).is_file()

    def delete(self, digest: str) -> None:
        target = self._blob(digest)
        try:
            target.unlink()
        except FileNotFoundError as exc:
            raise _not_found(digest, self.url) from exc
        except OSError as exc:
            raise StoreError(f"Could not delete artifact {digest} from {self.url}: {exc}") from exc

    def batch(self) -> BlobBatch:
        return _LocalBatch(self)

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"


class _LocalBatch:
    """Blobs written to temporary files as they come, synced and renamed at commit.

    Each blob goes to a temporary file beside its final name; its writeback to disk
    is started at once without waiting for it (``posix_fadvise``), so a commit finds
    most bytes already on disk. Commit then syncs every temporary file, renames each
    onto its digest and syncs the folders that gained a name: a blob is never under
    its digest before all its bytes are on disk, and every blob is on disk, under its
    name, before commit returns. One pass of syncs at the end instead of one sync per
    blob as it is written: on ext4 each sync of a new file commits the journal, so a
    snapshot of 123 chunks committed it 123 times.
    """

    def __init__(self, store: LocalArtifactStore) -> None:
        self.store = store
        self._staged: dict[str, Path] = {}  # digest -> its temporary file
        self._lock = threading.Lock()

    def add(self, data: bytes, digest: str) -> None:
        target = self.store._blob(digest)
        with self._lock:
            if digest in self._staged:
                return  # the same bytes twice in one batch: stored once
            if target.is_file():
                return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
        except OSError as exc:
            raise StoreError(
                f"Could not write artifact {digest} to {self.store.url}: {exc}"
            ) from exc
        tmp = Path(name)
        with self._lock:
            # Registered before it is written, so an error (here or in another
            # thread) removes it with the rest.
            if digest in self._staged:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                return
            self._staged[digest] = tmp
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                if hasattr(os, "posix_fadvise"):
                    # Starts writing the dirty pages back now (the pages are not needed
                    # again); waits for nothing. The sync at commit is what counts.
                    os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            raise StoreError(
                f"Could not write artifact {digest} to {self.store.url}: {exc}"
            ) from exc

    def _failed(self, digest: str, exc: OSError) -> StoreError:
        return StoreError(f"Could not write artifact {digest} to {self.store.url}: {exc}")

    def commit(self) -> None:
        with self._lock:
            staged, self._staged = dict(self._staged), {}
        try:
            for tmp in staged.values():
                _sync_path(tmp)  # every byte on disk before any name points at it
            folders: set[Path] = set()
            for digest, tmp in staged.items():
                target = self.store._blob(digest)
                os.replace(tmp, target)
                folders.add(target.parent)
            if os.name == "posix":  # Windows cannot open a folder to sync it
                for folder in sorted(folders):
                    _sync_path(folder)  # the new names themselves survive a crash
        except OSError as exc:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
            raise StoreError(f"Could not store artifacts in {self.store.url}: {exc}") from exc

    def discard(self) -> None:
        with self._lock:
            staged, self._staged = dict(self._staged), {}
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> _LocalBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _sync_path(path: Path) -> None:
    """fsync a file or folder by path (a folder's sync makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsspecArtifactStore:
    """Artifact store on any fsspec URL; Shipyard uses it for ``s3://bucket/prefix``.

    ``storage_options`` go to the fsspec filesystem unchanged (for s3fs:
    ``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``). The
    filesystem is created on first use, so constructing the store is free.

    >>> store = FsspecArtifactStore("s3://models/prod", {"anon": True})
    >>> store.url
    's3://models/prod'
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, created on first use."""
        if self._fs is None:
            self._fs, self._root = open_filesystem(
                self.url, self.storage_options, what="artifact store"
            )
        return self._fs

    @property
    def _prefix(self) -> str:
        # The path inside the filesystem ("bucket/prefix" for s3://bucket/prefix);
        # fsspec works it out when it creates the filesystem.
        _ = self.fs
        return self._root.rstrip("/")

    def _key(self, digest: str) -> str:
        digest = _check_digest(digest)
        return f"{self._prefix}/blobs/{digest[:2]}/{digest}"

    def _where(self, digest: str) -> str:
        return f"{self.url}/blobs/{digest[:2]}/{digest}"

    def put_bytes(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        self._put(data, digest)
        return digest

    def _put(self, data: bytes, digest: str) -> None:
        key = self._key(digest)
        try:
            if not self.fs.exists(key):
                # One PUT of the whole object: S3 makes an object visible only
                # once its upload completed, so readers never see half a blob
                # and no temporary key is needed.
                self.fs.pipe_file(key, data)
        except _BACKEND_ERRORS as exc:
            raise _store_error("write", digest, self.url, exc) from exc

    def put_file(self, path: Path) -> str:
        source = _open_source(path, self.url)
        # Upload to a temporary key while hashing, then copy server-side to
        # the final key. The digest therefore describes exactly the uploaded
        # bytes, the source is read once, and a failure half-way (which fsspec
        # would otherwise commit as a short object) can only leave a stray
        # object under tmp/, never a wrong blob under blobs/ that later
        # writes of the same digest would skip as "already stored".
        tmp = f"{self._prefix}/tmp/{uuid.uuid4().hex}"
        try:
            with source:
                hasher = hashlib.sha256()
                # block_size bounds memory: s3fs sends each 8 MiB as one part
                # of a multipart upload, which S3 publishes atomically on close.
                with self.fs.open(tmp, "wb", block_size=_PART) as out:
                    for chunk in _chunks(source):
                        hasher.update(chunk)
                        out.write(chunk)
            digest = hasher.hexdigest()
            key = self._key(digest)
            if not self.fs.exists(key):
                self.fs.cp_file(tmp, key)
            self.fs.rm_file(tmp)
        except _BACKEND_ERRORS as exc:
            self._discard(tmp)
            raise StoreError(
                f"Could not store {path} in the artifact store {self.url}: {reason(exc)}. "
                f"Check that the store is reachable, the bucket exists and the "
                f"credentials may write to it."
            ) from exc
        except BaseException:
            self._discard(tmp)
            raise
        return digest

    def _discard(self, tmp: str) -> None:
        # Best effort: the error that got us here is the one worth reporting.
        with contextlib.suppress(*_BACKEND_ERRORS):
            self.fs.rm_file(tmp)

    def get_bytes(self, digest: str) -> bytes:
        key = self._key(digest)
        try:
            data = self.fs.cat_file(key)
        except FileNotFoundError as exc:
            raise _not_found(digest, self.url) from exc
        except _BACKEND_ERRORS as exc:
            raise _store_error("read", digest, self.url, exc) from exc
        _verify(digest, sha256_bytes(data), self._where(digest))
        return bytes(data)

    def get_file(self, digest: str, dest: Path) -> Path:
        key = self._key(digest)
        try:
            source = self.fs.open(key, "rb", block_size=_PART)
        except FileNotFoundError as exc:
            raise _not_found(digest, self.url) from exc
        except _BACKEND_ERRORS as exc:
            raise _store_error("read", digest, self.url, exc) from exc
        try:
            return _copy_verified(source, digest, self._where(digest), Path(dest))
        except BOTO_ERRORS as exc:
            raise _store_error("read", digest, self.url, exc) from exc

    def exists(self, digest: str) -> bool:
        key = self._key(digest)
        try:
            return bool(self.fs.exists(key))
        except _BACKEND_ERRORS as exc:
            raise _store_error("look up", digest, self.url, exc) from exc

    def delete(self, digest: str) -> None:
        key = self._key(digest)
        try:
            # S3 deletes of absent keys succeed silently; look first so a
            # wrong digest is reported instead of ignored.
            if not self.fs.exists(key):
                raise _not_found(digest, self.url)
            self.fs.rm_file(key)
        except _BACKEND_ERRORS as exc:
            raise _store_error("delete", digest, self.url, exc) from exc

    def batch(self) -> BlobBatch:
        return _ObjectBatch(self)

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url!r})"


class _ObjectBatch:
    """An object store's batch: each blob is one PUT, which S3 makes visible only
    complete, so it is stored as it is added and there is nothing left to commit."""

    def __init__(self, store: FsspecArtifactStore) -> None:
        self.store = store

    def add(self, data: bytes, digest: str) -> None:
        self.store._put(data, digest)

    def __enter__(self) -> _ObjectBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        return None


def open_artifact_store(settings: Settings) -> ArtifactStore:
    """The artifact store that ``settings.artifact_url`` names.

    A folder path or ``file://`` URL gives a :class:`LocalArtifactStore`;
    ``s3://bucket/prefix`` an :class:`FsspecArtifactStore`, pointed at
    ``settings.s3_endpoint_url`` when set (MinIO, moto, ...).

    >>> store = open_artifact_store(Settings(artifacts="s3://models/prod"))
    >>> type(store).__name__, store.url
    ('FsspecArtifactStore', 's3://models/prod')
    """
    url = settings.artifact_url
    if "://" not in url:
        return LocalArtifactStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"SHIPYARD_ARTIFACTS={url!r} names the host {parts.netloc!r}; file:// URLs "
                f"must be local, e.g. file:///srv/shipyard/artifacts."
            )
        return LocalArtifactStore(Path(unquote(parts.path)))
    if scheme == "s3":
        if not parts.netloc:
            raise ConfigError(
                f"SHIPYARD_ARTIFACTS={url!r} has no bucket; use s3://bucket or s3://bucket/prefix."
            )
        options: dict[str, Any] = {}
        if settings.s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
        return FsspecArtifactStore(url, options)
    raise ConfigError(
        f"SHIPYARD_ARTIFACTS={url!r} uses the unsupported scheme {parts.scheme!r}. "
        f"Set it to {_SUPPORTED}."
    )


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidInputError(
            f"Invalid artifact digest {digest!r}: expected a SHA-256 as 64 lowercase hex digits."
        )
    return digest


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def _verify(digest: str, actual: str, where: str) -> None:
    if actual != digest:
        raise IntegrityError(
            f"Artifact {digest} at {where} was modified after it was stored: its bytes "
            f"now hash to {actual}. Do not use it; store the original file again "
            f"or restore the blob from a backup."
        )


def _not_found(digest: str, url: str) -> ArtifactNotFoundError:
    return ArtifactNotFoundError(
        f"No artifact {digest} in the artifact store {url}. Check the digest, or that "
        f"SHIPYARD_ARTIFACTS points at the store it was saved to."
    )


def _store_error(action: str, digest: str, url: str, exc: BaseException) -> StoreError:
    return StoreError(
        f"Could not {action} artifact {digest} in the artifact store {url}: {reason(exc)}. "
        f"Check that the store is reachable, the bucket exists and the credentials allow it."
    )


class _atomic_writer:
    """Open a temporary file beside ``target``; rename it onto ``target`` on success."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> IO[bytes]:
        fd, name = tempfile.mkstemp(prefix=".incoming-", dir=self.target.parent)
        self.tmp = Path(name)
        self.handle = os.fdopen(fd, "wb")
        return self.handle

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
            self.handle.close()
            if exc_type is None:
                os.replace(self.tmp, self.target)
        finally:
            self.tmp.unlink(missing_ok=True)


def _open_source(path: Path, url: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # the caller closes it
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise InvalidInputError(f"Cannot store {path} in {url}: it is not a file.") from exc
    except OSError as exc:
        raise StoreError(f"Could not open {path} to store it in {url}: {exc}") from exc


def _copy_verified(source: IO[bytes], digest: str, where: str, dest: Path) -> Path:
    """Stream ``source`` to ``dest`` while hashing; publish only if the hash matches.

    Streams into a temporary file beside ``dest`` and renames it at the end,
    so a blob that fails verification (or a failure half-way) leaves ``dest``
    untouched: nobody ever opens a half-written or tampered model file.
    """
    with source:
        if dest.is_dir():
            raise InvalidInputError(
                f"Cannot write artifact {digest} to {dest}: it is a folder; give a file path."
            )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with _atomic_writer(dest) as out:
                hasher = hashlib.sha256()
                for chunk in _chunks(source):
                    hasher.update(chunk)
                    out.write(chunk)
                _verify(digest, hasher.hexdigest(), where)
        except OSError as exc:
            raise StoreError(
                f"Could not copy artifact {digest} from {where} to {dest}: {exc}"
            ) from exc
    return dest
