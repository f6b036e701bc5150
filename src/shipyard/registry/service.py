"""The model registry: register, resolve, load, alias and archive versions.

It ties the stores together: model files go to the artifact store
(content-addressed, checked on read), the manifest's digest and the version's
metadata to the model store, and loaded packages are materialised in a
local cache keyed by manifest digest, so a version is fetched once per machine.
Stages plug in through :mod:`shipyard.registry.hooks`; the registry imports none.

>>> registry = Registry(stores, artifacts, cache_dir=Path("cache"), actor="ann")  # doctest: +SKIP
>>> version = registry.log_model(clf, "iris", sample=X_train)                       # doctest: +SKIP
>>> registry.set_alias("iris", "production", version.version)                       # doctest: +SKIP
>>> registry.load("iris").predict({"sepal_length": 5.1, ...})                       # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from shipyard.errors import (
    ArtifactNotFoundError,
    IntegrityError,
    InvalidReferenceError,
    ManifestError,
    ModelNotFoundError,
    UnsafeArtifactError,
)
from shipyard.registry.hooks import (
    LoggedVersion,
    PromotionGuard,
    ReferenceSampleSource,
    VersionLoggedHook,
)
from shipyard.registry.manifest import Manifest
from shipyard.registry.mlflow_import import read_mlflow_model
from shipyard.registry.model import LoadedModel
from shipyard.registry.optimize import compile_onnx_at_registration
from shipyard.registry.package import MANIFEST_NAME, read_package, verify_package, write_package
from shipyard.registry.refs import ModelRef, check_alias, check_model_name, parse_ref
from shipyard.registry.signature import Signature
from shipyard.store import records
from shipyard.store.alias_store import AliasStore
from shipyard.store.artifacts import ArtifactStore, sha256_file
from shipyard.store.audit_store import AuditStore
from shipyard.store.model_store import ModelStore
from shipyard.store.run_store import RunStore

logger = logging.getLogger("shipyard.registry")
T = TypeVar("T")

#: Version tag holding the SHA-256 of the package folder's manifest it was registered from.
SOURCE_TAG = "package_manifest"


@dataclass(frozen=True)
class RegistryStores:
    """The metadata stores the registry writes to (all on one database)."""

    models: ModelStore
    aliases: AliasStore
    audit: AuditStore
    runs: RunStore


class Registry:
    """Service functions behind the CLI, the Python API and the HTTP admin routes.

    ``after_log`` hooks run, in order, after a version is logged with a sample;
    ``promotion_guard`` is asked before every alias move, and ``reference_sample``
    gives back stored training rows (see :mod:`shipyard.registry.hooks`).
    Without them the registry checks names only.
    """

    def __init__(
        self,
        stores: RegistryStores,
        artifacts: ArtifactStore,
        *,
        cache_dir: Path,
        actor: str,
        after_log: Sequence[VersionLoggedHook] = (),
        promotion_guard: PromotionGuard | None = None,
        reference_sample: ReferenceSampleSource | None = None,
    ) -> None:
        self.models = stores.models
        self.aliases = stores.aliases
        self.audit = stores.audit
        self.runs = stores.runs
        self.artifacts = artifacts
        self.cache_dir = cache_dir
        self.actor = actor
        self.after_log = tuple(after_log)
        self.promotion_guard = promotion_guard
        self._reference_sample = reference_sample

    def acting_as(self, actor: str) -> Registry:
        """The same registry, its changes audit-logged as ``actor`` (a web UI user)."""
        other = copy.copy(self)
        other.actor = actor
        return other

    # -- registering -------------------------------------------------------

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        sample: pd.DataFrame | None,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
        data_fingerprint: dict[str, Any] | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        flavor: str | None = None,
        trusted_pickle: bool = False,
        signature: Any = None,
        optimize: bool | None = None,
        features: dict[str, Any] | None = None,
    ) -> records.ModelVersion:
        """Package ``model``, store its files and register it as the next version.

        ``optimize``: see :func:`~shipyard.registry.optimize.compile_onnx_at_registration`
        (by default a verified ONNX graph is compiled and serves; False opts out).
        """
        check_model_name(name)
        with tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
            package_dir = Path(tmp) / "package"
            manifest = write_package(
                model,
                package_dir,
                name=name,
                version=None,
                sample=sample,
                metrics=metrics,
                params={k: str(v) for k, v in (params or {}).items()},
                data_fingerprint=data_fingerprint,
                run_id=run_id,
                trusted_pickle=trusted_pickle,
                description=description,
                flavor=flavor,
                signature=signature,
                features=features,
            )
            version = self._register_package(package_dir, manifest, tags=tags, run_id=run_id)
        if sample is not None and self.after_log:
            # The stages keep what they derive from the training sample with the
            # version (data contract, drift reference), so later checks never have to
            # re-read the training set. Category columns take the model's training
            # categories, as the signature does.
            signature = Signature.from_dict(manifest.signature)
            logged = LoggedVersion(version, signature.with_category_dtypes(sample), signature)
            for hook in self.after_log:
                hook(logged)
        # A verified ONNX graph serves by default (checked against the model on the sample).
        compile_onnx_at_registration(
            self, version, sample, requested=optimize, trusted_pickle=trusted_pickle
        )
        return self.models.get_version(version.model, version.version)

    def reference_sample(self, version: records.ModelVersion) -> pd.DataFrame | None:
        """Rows kept from ``version``'s training sample by a stage, or None if none were."""
        return None if self._reference_sample is None else self._reference_sample(version)

    def register_package_folder(
        self, folder: Path, *, trusted_pickle: bool = False
    ) -> tuple[records.ModelVersion, bool]:
        """Register a package folder written elsewhere (``shipyard package``'s ``model/``).

        Returns the version and whether it was already registered: a folder whose
        manifest has the same SHA-256 as one registered before (so every file is the
        same, the manifest listing each file's checksum) reuses that version instead
        of adding a new one at every server start. A new folder is verified and
        loaded first, so a package that cannot serve is refused before it is
        registered. The run it was logged in belongs to the registry it came from:
        the version links to it only when this registry knows that run (the
        manifest keeps the run id either way).
        """
        folder = Path(folder)
        manifest = Manifest.load(folder)
        check_model_name(manifest.name)
        source = sha256_file(folder / MANIFEST_NAME)
        with suppress(ModelNotFoundError):  # a first version is always new
            for existing in reversed(self.models.list_versions(manifest.name)):
                if existing.tags.get(SOURCE_TAG) == source and existing.status != "archived":
                    return existing, True
        read_package(folder, trusted_pickle=trusted_pickle)
        run_id = manifest.run_id
        if run_id is not None and not self.runs.run_exists(run_id):
            run_id = None
        version = self._register_package(folder, manifest, tags={SOURCE_TAG: source}, run_id=run_id)
        return version, False

    def import_mlflow(
        self, path: Path, name: str, *, trusted_pickle: bool = False
    ) -> records.ModelVersion:
        """Import an MLflow scikit-learn model folder as the next version of ``name``.

        The model is re-stored in Shipyard's safe format (skops) whenever its
        types are on the trust list, even if MLflow pickled it; only a model
        that skops cannot vouch for stays a pickle, and only with the trust flag.
        """
        model, signature, meta = read_mlflow_model(path, trusted_pickle=trusted_pickle)
        sample = meta.get("input_example")
        tags = {"imported_from": "mlflow", "mlflow_source": str(path)}
        tags.update({f"mlflow_{k}": str(meta[k]) for k in ("run_id", "model_uuid") if k in meta})
        common: dict[str, Any] = {
            "sample": sample,
            "signature": signature if sample is None else None,
            "description": f"Imported from MLflow model {path}",
            "tags": tags,
        }
        try:
            return self.log_model(model, name, **common)
        except UnsafeArtifactError:
            if not trusted_pickle:
                raise
            return self.log_model(model, name, trusted_pickle=True, **common)

    def _register_package(
        self,
        package_dir: Path,
        manifest: Manifest,
        *,
        tags: dict[str, str] | None,
        run_id: str | None,
    ) -> records.ModelVersion:
        """Store the package's files and record the next version, linked to ``run_id``."""
        for relpath, entry in manifest.files.items():
            digest = self.artifacts.put_file(package_dir / relpath)
            if digest != entry.sha256:
                raise IntegrityError(
                    f"{relpath} in {package_dir} changed while it was being stored "
                    f"(manifest says {entry.sha256[:12]}…, stored {digest[:12]}…)."
                )

        def write_manifest(version: int) -> str:
            # Written beside, not into, the package: it may be read-only (a
            # container's /opt/model) and is the caller's to keep as it was.
            final = manifest.model_copy(update={"version": version})
            with tempfile.TemporaryDirectory(dir=self._scratch()) as tmp:
                return self.artifacts.put_file(final.dump(Path(tmp) / MANIFEST_NAME))

        return self.models.create_version(
            manifest.name,
            write_manifest=write_manifest,
            flavor=manifest.flavor,
            run_id=run_id,
            description=manifest.description,
            metrics=manifest.metrics,
            data_fingerprint=manifest.data_fingerprint,
            tags=tags,
            actor=self.actor,
        )

    # -- resolving and loading ---------------------------------------------

    def resolve(self, ref: str | ModelRef) -> records.ModelVersion:
        """The version a reference points at (``iris`` means ``iris@production``)."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        if parsed.version is not None:
            return self.models.get_version(parsed.name, parsed.version)
        if parsed.alias == "latest":
            return self.models.latest_version(parsed.name)
        assert parsed.alias is not None
        return self.models.get_version(
            parsed.name, self.aliases.get_alias(parsed.name, parsed.alias)
        )

    def manifest(self, version: records.ModelVersion) -> Manifest:
        return Manifest.load(self.package_dir(version) / MANIFEST_NAME)

    def package_dir(self, version: records.ModelVersion) -> Path:
        """The version's package folder in the local cache, fetched on demand.

        Only the manifest of a cached copy is checked here; callers that use the
        model files go through :meth:`verified_package_dir` or :meth:`load`.
        """
        target = self.cache_dir / version.manifest_digest
        manifest_path = target / MANIFEST_NAME
        if manifest_path.exists() and sha256_file(manifest_path) == version.manifest_digest:
            return target
        if target.exists():  # a cached copy whose manifest no longer matches: refetch it
            self._evict(target)
        staging = Path(tempfile.mkdtemp(dir=self._scratch()))
        try:
            self._fetch(version, version.manifest_digest, staging / MANIFEST_NAME)
            manifest = Manifest.load(staging / MANIFEST_NAME)
            for relpath, entry in manifest.files.items():
                self._fetch(version, entry.sha256, staging / relpath, relpath)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(target)
            except OSError:  # another process cached it first; theirs is as good
                if not manifest_path.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _fetch(
        self, version: records.ModelVersion, digest: str, dest: Path, relpath: str = MANIFEST_NAME
    ) -> None:
        """Copy one of the version's blobs to ``dest``; errors say whose file it is."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.artifacts.get_file(digest, dest)
        except (ArtifactNotFoundError, IntegrityError) as exc:
            raise type(exc)(
                f"Cannot load {version.ref}: its file {relpath} is unavailable. {exc}"
            ) from exc

    def verified_package_dir(self, version: records.ModelVersion) -> Path:
        """:meth:`package_dir` with every file checked against the manifest."""

        def verified(folder: Path) -> Path:
            verify_package(folder, Manifest.load(folder / MANIFEST_NAME))
            return folder

        return self._from_cache(version, verified)

    def load(self, ref: str | ModelRef, *, trusted_pickle: bool = False) -> LoadedModel:
        """Load a version for prediction; every file is checked against its checksum."""
        version = self.resolve(ref)
        manifest, predictor = self._from_cache(
            version, lambda folder: read_package(folder, trusted_pickle=trusted_pickle)
        )
        if manifest.name != version.model or manifest.version != version.version:
            raise ManifestError(
                f"The package stored for {version.ref} describes "
                f"{manifest.name}:{manifest.version}; the registry entry is inconsistent."
            )
        return LoadedModel(manifest, predictor)

    def _from_cache(self, version: records.ModelVersion, use: Callable[[Path], T]) -> T:
        """``use(package folder)``; if the cached copy is damaged, fetch it again once.

        The cache is only a copy: the artifact store holds the originals and checks
        every blob it hands out, so a corrupted or truncated cache file heals
        instead of failing every load until someone deletes it by hand.
        """
        try:
            return use(self.package_dir(version))
        except IntegrityError as exc:
            folder = self.cache_dir / version.manifest_digest
            if not folder.exists():
                raise  # the store itself failed the check; nothing local to repair
            logger.warning(
                "The cached copy of %s in %s is damaged (%s); fetching it again from %s.",
                version.ref, folder, exc, self.artifacts.url,
            )  # fmt: skip
            self._evict(folder)
            return use(self.package_dir(version))

    def _evict(self, folder: Path) -> None:
        # Renamed away first, so no other process ever sees a half-deleted copy.
        doomed = self._scratch() / f"evicted-{uuid.uuid4().hex}"
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            return  # another process evicted it first
        shutil.rmtree(doomed, ignore_errors=True)

    # -- aliases, archive, listing -------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        force: bool = False,
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed to before.

        The promotion guard may refuse a protected alias (``production``: failed
        gates, missing approvals) unless ``force=True`` with a written ``reason``;
        the override is audit-logged as ``force_alias`` with what it overrode.
        """
        check_alias(alias)
        overridden = []
        if self.promotion_guard is not None:
            overridden = self.promotion_guard(name, alias, version, force=force, reason=reason)
        previous = self.aliases.set_alias(name, alias, version, actor=self.actor, reason=reason)
        if overridden:
            self.audit.record(
                actor=self.actor,
                action="force_alias",
                model=name,
                subject=f"{name}@{alias}",
                from_value=None if previous is None else str(previous),
                to_value=str(version),
                reason=reason,
                details={"overridden": overridden},
            )
        return previous

    def delete_alias(self, name: str, alias: str, *, reason: str | None = None) -> int:
        return self.aliases.delete_alias(name, alias, actor=self.actor, reason=reason)

    def archive(self, ref: str, *, restore: bool = False, reason: str | None = None) -> None:
        """Archive (or restore) a model ``iris`` or a single version ``iris:3``."""
        parsed = parse_ref(ref)
        if parsed.version is None:
            if parsed.alias != "production" or "@" in ref:
                raise InvalidReferenceError(
                    f"Archive takes a model name or NAME:VERSION, not an alias ({ref!r})."
                )
            self.models.set_model_archived(
                parsed.name, not restore, actor=self.actor, reason=reason
            )
        else:
            self.models.set_version_archived(
                parsed.name, parsed.version, not restore, actor=self.actor, reason=reason
            )

    def _scratch(self) -> Path:
        scratch = self.cache_dir.parent / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch
