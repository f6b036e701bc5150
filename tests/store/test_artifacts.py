"""One suite for every artifact store backend: a local folder and a real S3 API (moto server)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services import S3_CREDENTIALS, moto_s3_server, new_bucket, s3_client, s3_options
from shipyard.config import Settings
from shipyard.errors import (
    ArtifactNotFoundError,
    ConfigError,
    IntegrityError,
    InvalidInputError,
    StoreError,
)
from shipyard.store.artifacts import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
    sha256_bytes,
    sha256_file,
)

# --- the S3 server: the suite's (one per test process), a bucket of this module's ---


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    # Versioning lets tests count real writes: a no-op put adds no version.
    return new_bucket(s3_endpoint, "artifacts", versioned=True)


# --- one suite, two backends -------------------------------------------------


@dataclass
class Backend:
    """A store plus raw access to its blobs, bypassing the store's checks."""

    store: ArtifactStore
    read_raw: Callable[[str], bytes]
    write_raw: Callable[[str, bytes], None]
    # Changes whenever the blob is rewritten (inode+mtime, or S3 version ids).
    fingerprint: Callable[[str], object]
    # Names of staging files/keys still lying around.
    leftovers: Callable[[], list[str]]
    # How a child process reopens the same store.
    spec: dict[str, Any]


def _local_backend(tmp_path: Path) -> Backend:
    root = tmp_path / "artifacts"

    def blob(digest: str) -> Path:
        return root / "blobs" / digest[:2] / digest

    def fingerprint(digest: str) -> object:
        stat = blob(digest).stat()
        return (stat.st_ino, stat.st_mtime_ns)

    return Backend(
        store=LocalArtifactStore(root),
        read_raw=lambda d: blob(d).read_bytes(),
        write_raw=lambda d, data: blob(d).write_bytes(data),
        fingerprint=fingerprint,
        leftovers=lambda: [p.name for p in root.rglob(".incoming-*")],
        spec={"kind": "local", "root": str(root)},
    )


def _s3_backend(endpoint: str, bucket: str) -> Backend:
    prefix = f"suite/{uuid.uuid4().hex}"
    client = s3_client(endpoint)

    def key(digest: str) -> str:
        return f"{prefix}/blobs/{digest[:2]}/{digest}"

    def fingerprint(digest: str) -> object:
        listing = client.list_object_versions(Bucket=bucket, Prefix=key(digest))
        return sorted(v["VersionId"] for v in listing.get("Versions", []))

    def leftovers() -> list[str]:
        listing = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/tmp/")
        return [obj["Key"] for obj in listing.get("Contents", [])]

    options = s3_options(endpoint)
    url = f"s3://{bucket}/{prefix}"
    return Backend(
        store=FsspecArtifactStore(url, options),
        read_raw=lambda d: client.get_object(Bucket=bucket, Key=key(d))["Body"].read(),
        write_raw=lambda d, data: client.put_object(Bucket=bucket, Key=key(d), Body=data),
        fingerprint=fingerprint,
        leftovers=leftovers,
        spec={"kind": "s3", "url": url, "options": options},
    )


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local_backend(tmp_path)
    return _s3_backend(request.getfixturevalue("s3_endpoint"), request.getfixturevalue("bucket"))


def _write_random(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        left = size
        while left:
            piece = min(left, 1 << 20)
            handle.write(os.urandom(piece))
            left -= piece
    return path


def test_store_satisfies_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.store, ArtifactStore)


def test_put_bytes_round_trips_under_its_sha256(backend: Backend) -> None:
    data = b"coefficients: 0.1, 0.2, 0.3\n"
    digest = backend.store.put_bytes(data)

    assert digest == hashlib.sha256(data).hexdigest()
    assert backend.store.exists(digest)
    assert backend.store.get_bytes(digest) == data
    # The documented layout: blobs/<first two hex digits>/<digest>.
    assert backend.read_raw(digest) == data


def test_put_file_and_get_file_round_trip(backend: Backend, tmp_path: Path) -> None:
    source = _write_random(tmp_path / "model.bin", 3 * (1 << 20) + 17)  # several chunks
    digest = backend.store.put_file(source)
    assert digest == sha256_file(source)

    dest = tmp_path / "restored" / "deep" / "model.bin"
    assert backend.store.get_file(digest, dest) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.bin"]
    assert backend.leftovers() == []


def test_put_bytes_and_put_file_share_one_blob(backend: Backend, tmp_path: Path) -> None:
    data = b"same bytes, two ways in"
    source = tmp_path / "a.txt"
    source.write_bytes(data)

    assert backend.store.put_file(source) == backend.store.put_bytes(data)


def test_empty_artifact_round_trips(backend: Backend, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    digest = backend.store.put_file(empty)

    assert digest == sha256_bytes(b"")
    assert backend.store.get_bytes(digest) == b""
    assert backend.store.get_file(digest, tmp_path / "out").read_bytes() == b""


def test_storing_known_bytes_again_writes_nothing(backend: Backend, tmp_path: Path) -> None:
    data = b"immutable"
    digest = backend.store.put_bytes(data)
    before = backend.fingerprint(digest)
    source = tmp_path / "again"
    source.write_bytes(data)

    assert backend.store.put_bytes(data) == digest
    assert backend.store.put_file(source) == digest
    assert backend.fingerprint(digest) == before
    assert backend.leftovers() == []


_STREAM_PROBE = """
import json, sys, tracemalloc
from pathlib import Path
from shipyard.store.artifacts import FsspecArtifactStore, LocalArtifactStore

spec = json.loads(sys.argv[1])
if spec["kind"] == "local":
    store = LocalArtifactStore(Path(spec["root"]))
else:
    store = FsspecArtifactStore(spec["url"], spec["options"])
store.exists("0" * 64)  # import and connect everything before measuring
tracemalloc.start()
digest = store.put_file(Path(spec["source"]))
put_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
store.get_file(digest, Path(spec["dest"]))
get_peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"digest": digest, "put_peak": put_peak, "get_peak": get_peak}))
"""


def test_large_files_stream_through_bounded_memory(backend: Backend, tmp_path: Path) -> None:
    # Measured in a child process so that moto, which keeps the objects it
    # receives in this process, does not count towards the client's memory.
    size = 64 << 20
    source = _write_random(tmp_path / "big.bin", size)
    dest = tmp_path / "big.out"
    spec = {**backend.spec, "source": str(source), "dest": str(dest)}
    done = subprocess.run(
        [sys.executable, "-c", _STREAM_PROBE, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    assert result["digest"] == sha256_file(source)
    assert sha256_file(dest) == result["digest"]
    # Reading the file whole would need at least `size` bytes; streaming in
    # chunks (1 MiB locally, 8 MiB parts on S3) stays far below half of it.
    assert result["put_peak"] < size // 2, result
    assert result["get_peak"] < size // 2, result


def test_changed_byte_is_detected_on_every_read(backend: Backend, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    digest = backend.store.put_bytes(data)
    tampered = bytearray(data)
    tampered[1000] ^= 0x01
    backend.write_raw(digest, bytes(tampered))

    with pytest.raises(IntegrityError, match="modified after it was stored") as info:
        backend.store.get_bytes(digest)
    assert digest in str(info.value)
    assert backend.store.url in str(info.value)

    dest = tmp_path / "out" / "model.bin"
    with pytest.raises(IntegrityError, match=digest):
        backend.store.get_file(digest, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no half-written temporary file either


def test_failed_verification_leaves_an_existing_dest_alone(
    backend: Backend, tmp_path: Path
) -> None:
    digest = backend.store.put_bytes(b"version two")
    backend.write_raw(digest, b"version twO")
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"version one")

    with pytest.raises(IntegrityError):
        backend.store.get_file(digest, dest)
    assert dest.read_bytes() == b"version one"


def test_missing_digest_is_not_found(backend: Backend, tmp_path: Path) -> None:
    digest = sha256_bytes(b"never stored")
    dest = tmp_path / "out.bin"

    assert not backend.store.exists(digest)
    with pytest.raises(ArtifactNotFoundError, match=digest):
        backend.store.get_bytes(digest)
    with pytest.raises(ArtifactNotFoundError, match=digest):
        backend.store.get_file(digest, dest)
    with pytest.raises(ArtifactNotFoundError, match=digest):
        backend.store.delete(digest)
    assert not dest.exists()


def test_delete_removes_the_blob(backend: Backend) -> None:
    digest = backend.store.put_bytes(b"to be removed")
    backend.store.delete(digest)

    assert not backend.store.exists(digest)
    with pytest.raises(ArtifactNotFoundError):
        backend.store.get_bytes(digest)


BAD_DIGESTS = [
    "",
    "abc",
    "A" * 64,  # uppercase
    "g" * 64,  # not hex
    "0" * 63,
    "0" * 65,
    "../../../../etc/passwd",
    "00/" + "0" * 61,
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_malformed_digest_is_invalid_input(backend: Backend, tmp_path: Path, bad: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: backend.store.get_bytes(bad),
        lambda: backend.store.get_file(bad, tmp_path / "x"),
        lambda: backend.store.exists(bad),
        lambda: backend.store.delete(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="64 lowercase hex digits"):
            call()
    assert not (tmp_path / "x").exists()


def test_missing_source_file_is_invalid_input(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a file"):
        backend.store.put_file(tmp_path / "nope.bin")
    with pytest.raises(InvalidInputError, match="not a file"):
        backend.store.put_file(tmp_path)


def test_get_file_into_a_folder_is_refused(backend: Backend, tmp_path: Path) -> None:
    digest = backend.store.put_bytes(b"x")
    with pytest.raises(InvalidInputError, match="is a folder"):
        backend.store.get_file(digest, tmp_path)


# --- backend specifics -------------------------------------------------------


def test_local_store_touches_the_disk_only_on_first_write(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    store = LocalArtifactStore(root)
    assert not store.exists(sha256_bytes(b"x"))
    with pytest.raises(ArtifactNotFoundError):
        store.get_bytes(sha256_bytes(b"x"))
    assert not root.exists()

    digest = store.put_bytes(b"x")
    assert (root / "blobs" / digest[:2] / digest).read_bytes() == b"x"
    assert store.url == root.as_uri()


def test_fsspec_store_connects_lazily_and_translates_errors(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    options = {
        **S3_CREDENTIALS,
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{closed_port}"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    store = FsspecArtifactStore("s3://unreachable/x", options)  # no I/O: must not fail

    with pytest.raises(StoreError, match="s3://unreachable/x") as info:
        store.put_bytes(b"x")
    assert info.value.__cause__ is not None


def test_missing_bucket_is_a_store_error(s3_endpoint: str, tmp_path: Path) -> None:
    store = FsspecArtifactStore("s3://no-such-bucket/models", s3_options(s3_endpoint))
    source = tmp_path / "m.bin"
    source.write_bytes(b"weights")

    with pytest.raises(StoreError, match="bucket") as info:
        store.put_bytes(b"weights")
    assert isinstance(info.value.__cause__, Exception)
    with pytest.raises(StoreError, match=str(source)):
        store.put_file(source)


# --- choosing a backend from settings ----------------------------------------


def test_default_settings_give_a_local_store_in_home(tmp_path: Path) -> None:
    store = open_artifact_store(Settings(home=tmp_path, artifacts=None))
    assert isinstance(store, LocalArtifactStore)
    assert store.root == (tmp_path / "artifacts").resolve()


def test_folder_and_file_url_give_a_local_store(tmp_path: Path) -> None:
    folder = tmp_path / "blobs here"
    by_path = open_artifact_store(Settings(artifacts=str(folder)))
    by_url = open_artifact_store(Settings(artifacts=folder.as_uri()))

    assert isinstance(by_path, LocalArtifactStore)
    assert isinstance(by_url, LocalArtifactStore)
    assert by_path.root == by_url.root == folder
    digest = by_url.put_bytes(b"shared")
    assert by_path.get_bytes(digest) == b"shared"


def test_s3_url_gives_an_fsspec_store_on_the_endpoint(
    s3_endpoint: str, bucket: str, aws_env: None
) -> None:
    # Credentials come from the standard AWS chain (aws_env), as in production.
    url = f"s3://{bucket}/settings-{uuid.uuid4().hex}"
    store = open_artifact_store(Settings(artifacts=url, s3_endpoint_url=s3_endpoint))

    assert isinstance(store, FsspecArtifactStore)
    assert store.url == url
    assert store.storage_options == {"client_kwargs": {"endpoint_url": s3_endpoint}}
    digest = store.put_bytes(b"via settings")
    assert store.get_bytes(digest) == b"via settings"


def test_s3_url_without_endpoint_uses_the_aws_default() -> None:
    store = open_artifact_store(Settings(artifacts="s3://models", s3_endpoint_url=None))
    assert isinstance(store, FsspecArtifactStore)
    assert store.storage_options == {}


@pytest.mark.parametrize(
    "url", ["gs://bucket/x", "http://example.com/a", "ftp://host/x", "s3://", "file://host/x"]
)
def test_unusable_artifact_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="SHIPYARD_ARTIFACTS") as info:
        open_artifact_store(Settings(artifacts=url))
    assert url in str(info.value)


def test_unsupported_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigError) as info:
        open_artifact_store(Settings(artifacts="gs://bucket/x"))
    message = str(info.value)
    assert "'gs'" in message
    assert "file://" in message
    assert "s3://" in message


# --- helpers and the test server itself --------------------------------------


def test_sha256_helpers_match_the_standard(tmp_path: Path) -> None:
    # FIPS 180-2 test vector for "abc".
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_bytes(b"abc") == abc
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert sha256_file(path) == abc

    big = _write_random(tmp_path / "big", 5 * (1 << 20) + 3)
    assert sha256_file(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def _accepts_connections(endpoint: str) -> bool:
    host, port = endpoint.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_moto_server_fixture_shuts_down() -> None:
    with moto_s3_server() as endpoint:
        assert _accepts_connections(endpoint)
        assert s3_client(endpoint).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert not _accepts_connections(endpoint)


def test_a_batch_stores_every_blob_once_it_commits(backend: Backend) -> None:
    blobs = [b"chunk one", b"chunk two", b"chunk one"]  # the same bytes twice: stored once
    with backend.store.batch() as batch:
        for data in blobs:
            batch.add(data, sha256_bytes(data))
    for data in blobs:
        assert backend.store.get_bytes(sha256_bytes(data)) == data
    assert backend.leftovers() == []


def test_a_local_batch_names_no_blob_before_commit_and_discards_on_error(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    data = b"rows that must not be half-stored"
    digest = sha256_bytes(data)
    with pytest.raises(RuntimeError, match="snapshot failed"), store.batch() as batch:
        batch.add(data, digest)
        assert not store.exists(digest)  # written, but not under its name yet
        raise RuntimeError("snapshot failed")
    assert not store.exists(digest)
    assert list((tmp_path / "artifacts").rglob(".incoming-*")) == []


def test_a_local_batch_syncs_each_blob_before_naming_it_and_the_names_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The durability order: fsync(temporary file) -> rename onto the digest -> fsync of
    the folder, for every blob, all before the batch's block is left."""
    from shipyard.store import artifacts as module

    store = LocalArtifactStore(tmp_path / "artifacts")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("rename", f"{src} -> {dst}"))
        real_replace(src, dst)

    monkeypatch.setattr(module.os, "fsync", fsync)
    monkeypatch.setattr(module.os, "replace", replace)
    blobs = [f"chunk {i}".encode() for i in range(5)]
    with store.batch() as batch:
        for data in blobs:
            batch.add(data, sha256_bytes(data))
        assert events == []  # nothing synced or named while blobs are still coming
    events.append(("left the block", ""))

    left = events.index(("left the block", ""))
    for data in blobs:
        digest = sha256_bytes(data)
        target = tmp_path / "artifacts" / "blobs" / digest[:2] / digest
        (renamed,) = [i for i, (kind, what) in enumerate(events) if what.endswith(f"-> {target}")]
        source = events[renamed][1].split(" -> ")[0]
        synced = events.index(("fsync", source))
        folder = events.index(("fsync", str(target.parent)))
        assert synced < renamed < folder < left, events


def test_a_batch_takes_the_callers_digest_and_a_wrong_one_is_caught_on_read(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot hashed each chunk already: adding it must not hash it again (that
    was a second SHA-256 of every chunk); a digest that does not match its bytes is
    stored under it, and the first read says so instead of returning the bytes."""
    from shipyard.store import artifacts as module

    data, other = b"the chunk", b"other bytes"
    wrong = sha256_bytes(other)
    hashed: list[int] = []
    real = module.hashlib.sha256

    def counting(*args: Any) -> Any:
        hashed.append(len(args[0]) if args else 0)
        return real(*args)

    monkeypatch.setattr(module.hashlib, "sha256", counting)
    with backend.store.batch() as batch:
        batch.add(data, sha256_bytes(data))
        batch.add(data, wrong)
    monkeypatch.setattr(module.hashlib, "sha256", real)
    assert hashed == [len(data)]  # the sha256_bytes call above, no other
    assert backend.store.get_bytes(sha256_bytes(data)) == data
    with pytest.raises(IntegrityError):
        backend.store.get_bytes(wrong)
