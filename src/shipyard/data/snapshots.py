"""Dataset versions: snapshot a table, read it back, write it out, show it, prune.

A version's rows are Parquet chunks in the artifact store, each under the
SHA-256 of its bytes (see :mod:`shipyard.data.chunking` for where chunks are
cut, and why), listed in order by a JSON manifest that is itself a blob. A
version stores only the chunks no earlier version had, so snapshotting a
table again after appending 1 % of rows stores about 1 % more bytes. A Delta
Lake source is not copied: the version records the table's URI and Delta
version, and reading it back opens the table at that version and checks its
content hash.

>>> versions = DataVersions(datasets, artifacts, actor="ann")      # doctest: +SKIP
>>> v = versions.snapshot("visits.parquet", name="visits")          # doctest: +SKIP
>>> versions.write(v.ref, Path("copy.parquet"))                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.ahead import mapped_ahead
from shipyard.data.chunking import (
    TARGET_ROWS,
    Chunk,
    Chunker,
    Piece,
    chunk_bytes,
    piece_hashes,
    read_chunk,
)
from shipyard.data.layout import CategoryRecorder, Restorer, named_index
from shipyard.data.refs import parse_data_ref
from shipyard.data.sources import DeltaSpec, delta_frames, is_delta_table, iter_delta, read_ahead
from shipyard.errors import IntegrityError, InvalidInputError, NotFoundError
from shipyard.names import check_name
from shipyard.store.artifacts import ArtifactStore, sha256_bytes
from shipyard.store.data_records import DatasetVersion
from shipyard.store.dataset_store import DatasetStore

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_FORMAT = "shipyard.dataset/1"
#: Threads that encode, hash and store chunks: one per core (at least two, so storing
#: one chunk's bytes overlaps encoding the next).
_WORKERS = max(2, os.cpu_count() or 1)
_IN_FLIGHT = 2 * _WORKERS
#: Threads that write new chunks to the artifact store.
_WRITE_THREADS = 2
#: ``data get`` writes these formats, chosen by the output's extension.
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class PruneResult:
    """What ``data prune`` removed and what it kept because something refers to it."""

    removed: list[str]
    kept: dict[str, str]
    blobs_removed: int
    bytes_freed: int


class DataVersions:
    """Snapshot, read and prune dataset versions (the store of records plus the blob store)."""

    def __init__(
        self,
        datasets: DatasetStore,
        artifacts: ArtifactStore,
        *,
        actor: str,
        storage_options: dict[str, Any] | None = None,
        target_rows: int = TARGET_ROWS,
    ) -> None:
        self.datasets = datasets
        self.artifacts = artifacts
        self.actor = actor
        self.storage_options = dict(storage_options or {})
        self.target_rows = target_rows

    # -- writing ----------------------------------------------------------------------------

    def snapshot(
        self,
        source: str | Path | pd.DataFrame,
        *,
        name: str,
        message: str | None = None,
        delta_version: int | None = None,
        as_of: Any = None,
        delta: bool = False,
        described: str | None = None,
        reading: Iterator[Piece] | None = None,
    ) -> DatasetVersion:
        """Store ``source`` as the next version of dataset ``name``; return that version.

        ``source`` is a DataFrame or a table location (file, folder, glob,
        ``URL#TABLE`` / ``URL#SELECT ...``, or a Delta Lake table: a local folder
        with ``_delta_log``, or any URI with ``delta=True``). ``delta_version`` /
        ``as_of`` pick the Delta version to pin. ``described`` says where a DataFrame
        came from (``visits.parquet``), as its version's source. ``reading`` is
        ``source`` already being read (:func:`~shipyard.data.sources.read_ahead`).
        """
        check_name(name, kind="Dataset name")
        if _is_dataframe(source):
            # A named index is kept as leading columns (see shipyard.data.layout).
            return self._store_frames(
                [Piece(source, keep_index=True)], name=name, message=message, described=described
            )
        text = str(source)
        if delta or delta_version is not None or as_of is not None or is_delta_table(text):
            return self._pin_delta(DeltaSpec(text, delta_version, as_of), name, message)
        if reading is None:
            reading = read_ahead(text, storage_options=self.storage_options)
        return self._store_frames(
            reading,
            name=name,
            message=message,
            described=text,
        )

    def _store_frames(
        self,
        pieces: Iterable[Piece],
        *,
        name: str,
        message: str | None,
        described: str | None,
    ) -> DatasetVersion:
        chunker = Chunker(self.target_rows)
        chunks: list[dict[str, Any]] = []
        new_bytes = 0
        first: Piece | None = None
        categories = CategoryRecorder()
        index: dict[str, list[Any]] | None = None
        # Chunks of the dataset's newest version by key: an unchanged chunk is found
        # there without encoding it again (most of a re-snapshot's work).
        known = self._known_chunks(name)

        def store(chunk: Chunk) -> tuple[dict[str, Any], int, Future[None] | None]:
            """The chunk's manifest entry, the bytes it adds to the store, and their write."""
            seen = known.get(chunk.key)
            if seen is not None and self.artifacts.exists(seen["digest"]):
                return {**seen, "key": chunk.key}, 0, None
            data = chunk_bytes(chunk)
            digest = sha256_bytes(data)
            added, write = 0, None
            if not self.artifacts.exists(digest):
                # A write waits on the disk or the network: on threads of their own,
                # so the encoding threads go on.
                write = writer.submit(blobs.add, data, digest)
                added = len(data)
            entry = {"digest": digest, "rows": chunk.rows, "bytes": len(data)}
            return {**entry, "key": chunk.key}, added, write

        # Encoding, hashing and uploading a chunk release the GIL (zstd, SHA-256, I/O):
        # they run on a small pool while this thread hashes the next rows (and, for a
        # file or SQL source, another thread already reads the rows after those).
        # At most _IN_FLIGHT chunks wait, so memory stays bounded; order is kept.
        pending: deque[Future[tuple[dict[str, Any], int, Future[None] | None]]] = deque()
        counted: set[str] = set()

        def collect(limit: int) -> None:
            nonlocal new_bytes
            while len(pending) > limit:
                entry, added, write = pending.popleft().result()
                if write is not None:
                    write.result()  # a failed write fails the snapshot here
                if added and entry["digest"] in counted:
                    added = 0  # the same new chunk twice in this table: stored once
                counted.add(entry["digest"])
                chunks.append(entry)
                new_bytes += added

        # The chunks and the manifest are one batch of blobs: written as they come,
        # synced to disk and renamed onto their digests together when the batch
        # commits, which is before the version is recorded (so the database never
        # lists a blob that a crash could lose). An error discards the batch.
        with self.artifacts.batch() as blobs:
            with (
                ThreadPoolExecutor(max_workers=_WRITE_THREADS) as writer,
                ThreadPoolExecutor(max_workers=_WORKERS) as pool,
            ):
                # Rows are hashed on the pool too, a batch or two ahead of the chunker.
                hashed = mapped_ahead(pool, lambda p: (p, piece_hashes(p)), pieces)
                for piece, hashes in hashed:
                    first = first or piece
                    if not piece.plain:
                        # Hashed, so already converted: what its rows cannot say (a
                        # plain piece has no categories and no index).
                        categories.see(piece.frame)
                        index = index or piece.index
                    for chunk in chunker.feed(piece, hashes):
                        pending.append(pool.submit(store, chunk))
                        collect(_IN_FLIGHT)
                for chunk in chunker.finish():
                    pending.append(pool.submit(store, chunk))
                if not pending and not chunks and first is not None:
                    # No rows but columns: keep the schema in one empty chunk.
                    pending.append(pool.submit(store, Chunk((first.slice(0, 0),), "")))
                collect(0)
            fp = chunker.fingerprint
            if first is None or fp.schema is None:
                raise InvalidInputError(f"{described or 'The DataFrame'} has no rows to snapshot.")
            manifest = {
                "format": MANIFEST_FORMAT,
                "schema": fp.schema,
                "n_rows": fp.n_rows,
                "content_hash": fp.hexdigest(),
                "chunks": chunks,
            }
            # Only when there is something to restore: other manifests (and their
            # digests) stay as they were.
            recorded = categories.manifest()
            if recorded:
                manifest["categories"] = recorded
            if index is not None:
                manifest["index"] = index
            manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
            manifest_digest = sha256_bytes(manifest_bytes)
            blobs.add(manifest_bytes, manifest_digest)
        return self.datasets.add_version(
            name,
            actor=self.actor,
            manifest_digest=manifest_digest,
            n_rows=fp.n_rows,
            schema=fp.schema,
            content_hash=fp.hexdigest(),
            source=described,
            message=message,
            total_bytes=sum(c["bytes"] for c in chunks),
            new_bytes=new_bytes,
            details={"chunks": len(chunks), "target_rows": self.target_rows},
        )

    def _known_chunks(self, name: str) -> dict[str, dict[str, Any]]:
        try:
            newest = self.datasets.get_version(name)
        except NotFoundError:
            return {}
        return {
            c["key"]: {k: c[k] for k in ("digest", "rows", "bytes")}
            for c in self.manifest(newest)["chunks"]
            if c.get("key")
        }

    def _pin_delta(self, spec: DeltaSpec, name: str, message: str | None) -> DatasetVersion:
        table = delta_frames(spec, storage_options=self.storage_options)
        chunker = Chunker(self.target_rows)
        for piece in iter_delta(table):
            for _ in chunker.feed(piece):
                pass  # only the fingerprint: a Delta table keeps its own files
        fp = chunker.fingerprint
        if fp.schema is None:
            raise InvalidInputError(f"The Delta Lake table {spec.uri!r} has no rows to pin.")
        pinned = int(table.version())
        return self.datasets.add_version(
            name,
            actor=self.actor,
            manifest_digest=None,
            n_rows=fp.n_rows,
            schema=fp.schema,
            content_hash=fp.hexdigest(),
            source=spec.uri,
            message=message,
            total_bytes=0,
            new_bytes=0,
            details={"delta": {"uri": spec.uri, "version": pinned}},
        )

    # -- reading ----------------------------------------------------------------------------

    def resolve(self, ref: str) -> DatasetVersion:
        """``name:3`` or ``name`` (the newest version)."""
        name, version = parse_data_ref(ref)
        return self.datasets.get_version(name, version)

    def manifest(self, version: DatasetVersion) -> dict[str, Any]:
        if version.manifest_digest is None:
            return {"chunks": []}
        return dict(json.loads(self.artifacts.get_bytes(version.manifest_digest)))

    def iter_chunks(self, ref: str | DatasetVersion) -> Iterator[pd.DataFrame]:
        """The version's rows, one stored chunk at a time (memory holds one chunk), each
        with the version's categories and index (see :mod:`shipyard.data.layout`)."""
        version = ref if isinstance(ref, DatasetVersion) else self.resolve(ref)
        frames, restorer = self._categorized(version)
        for frame in frames:
            yield restorer.set_index(frame)

    def _categorized(self, version: DatasetVersion) -> tuple[Iterator[pd.DataFrame], Restorer]:
        """The stored chunks with the recorded categories (the index still in columns),
        and what restores the version's layout; the manifest is read once, here."""
        if version.delta is not None:
            return self._read_delta(version), Restorer({}, version.ref)
        manifest = self.manifest(version)
        restorer = Restorer(manifest, version.ref)
        frames = (
            restorer.categorize(read_chunk(self.artifacts.get_bytes(chunk["digest"])))
            for chunk in manifest["chunks"]
        )
        return frames, restorer

    def _read_delta(self, version: DatasetVersion) -> Iterator[pd.DataFrame]:
        delta = version.delta or {}
        table = delta_frames(
            DeltaSpec(str(delta["uri"]), int(delta["version"])),
            storage_options=self.storage_options,
        )
        chunker = Chunker(self.target_rows)
        for piece in iter_delta(table):
            list(chunker.feed(piece))
            yield piece.frame
        if chunker.fingerprint.hexdigest() != version.content_hash:
            raise IntegrityError(
                f"Dataset {version.ref} pins Delta Lake table {delta['uri']} at version "
                f"{delta['version']}, but that version now reads differently (its files were "
                "vacuumed or rewritten). Snapshot the data into Shipyard's store instead."
            )

    def read(self, ref: str | DatasetVersion) -> pd.DataFrame:
        """The whole version as one DataFrame (for training; ``write`` streams instead)."""
        import pandas as pd

        version = ref if isinstance(ref, DatasetVersion) else self.resolve(ref)
        chunks, restorer = self._categorized(version)
        frames = list(chunks)
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if list(frame.columns) == list(version.schema):
            frame = frame.astype(version.schema)
        return restorer.set_index(frame)

    def write(self, ref: str, output: Path) -> DatasetVersion:
        """Write the version to ``output`` (Parquet, CSV or JSON lines), one chunk at a time."""
        version = self.resolve(ref)
        kind = OUTPUT_FORMATS.get(output.suffix.lower())
        if kind is None:
            raise InvalidInputError(
                f"Cannot write {output}: give a file ending in .parquet, .csv or .jsonl."
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.partial")
        try:
            _WRITERS[kind](self.iter_chunks(version), tmp)
            tmp.replace(output)
        finally:
            tmp.unlink(missing_ok=True)
        return version

    # -- retention --------------------------------------------------------------------------

    def prune(
        self,
        name: str | None = None,
        *,
        keep_last: int = 1,
        in_use: Callable[[DatasetVersion], str | None],
        dry_run: bool = False,
    ) -> PruneResult:
        """Remove all but the newest ``keep_last`` versions (of ``name``), except those
        ``in_use`` names a user for (a run, a live model version); then the blobs no
        remaining version lists."""
        if keep_last < 0:
            raise InvalidInputError("--keep-last must be 0 or more.")
        by_name: dict[str, list[DatasetVersion]] = {}
        for v in self.datasets.list_versions(name):
            by_name.setdefault(v.dataset, []).append(v)
        removed: list[DatasetVersion] = []
        kept: dict[str, str] = {}
        for group in by_name.values():
            old = group[: max(0, len(group) - keep_last)]
            for v in old:
                user = in_use(v)
                if user is not None:
                    kept[v.ref] = user
                else:
                    removed.append(v)
        # Every other dataset's versions too: two datasets holding the same rows share
        # chunks (a run's logged frame and the file it came from), so pruning one must
        # not delete what the other still lists.
        survivors = [v for v in self.datasets.list_versions() if v not in removed]
        live: set[str] = set()
        for v in survivors:
            if v.manifest_digest is not None:
                live.add(v.manifest_digest)
                live.update(c["digest"] for c in self.manifest(v)["chunks"])
        doomed: dict[str, int] = {}
        for v in removed:
            if v.manifest_digest is None:
                continue
            for chunk in self.manifest(v)["chunks"]:
                if chunk["digest"] not in live:
                    doomed[chunk["digest"]] = int(chunk["bytes"])
            if v.manifest_digest not in live:
                doomed[v.manifest_digest] = 0
        if not dry_run:
            for v in removed:
                self.datasets.delete_version(v.dataset, v.version)
            for digest in doomed:
                if self.artifacts.exists(digest):
                    self.artifacts.delete(digest)
        return PruneResult(
            removed=[v.ref for v in removed],
            kept=kept,
            blobs_removed=len(doomed),
            bytes_freed=sum(doomed.values()),
        )


def _is_dataframe(source: object) -> bool:
    """Whether ``source`` is a pandas DataFrame, without importing pandas for a location.

    Not by looking pandas up in ``sys.modules``: a thread reading ahead may be importing
    it at that moment, and a half-imported module has no ``DataFrame`` yet; ``import``
    waits for the other thread to finish it.
    """
    if isinstance(source, str | os.PathLike):
        return False
    import pandas as pd

    return isinstance(source, pd.DataFrame)


def _write_parquet(chunks: Iterator[pd.DataFrame], path: Path) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in chunks:
            # A named index is written as pandas writes it (columns that read back as
            # the index); the default one is not written.
            table = pa.Table.from_pandas(chunk, preserve_index=named_index(chunk))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()


def _write_csv(chunks: Iterator[pd.DataFrame], path: Path) -> None:
    with open(path, "w", newline="") as out:
        for i, chunk in enumerate(chunks):
            chunk.to_csv(out, index=named_index(chunk), header=i == 0)


def _write_jsonl(chunks: Iterator[pd.DataFrame], path: Path) -> None:
    # Not pandas' to_json: it keeps 15 digits of a float, milliseconds of a time and
    # rewrites zone-aware times as UTC. frame_lines writes every value as itself.
    from shipyard.data.jsonlines import frame_lines

    with open(path, "w", encoding="utf-8") as out:
        for chunk in chunks:
            chunk = chunk.reset_index() if named_index(chunk) else chunk
            out.write(frame_lines(chunk))


_WRITERS: dict[str, Callable[[Iterator[pd.DataFrame], Path], None]] = {
    "parquet": _write_parquet,
    "csv": _write_csv,
    "jsonl": _write_jsonl,
}

__all__ = ["MANIFEST_FORMAT", "OUTPUT_FORMATS", "DataVersions", "PruneResult"]
