"""Opening fsspec filesystems by URL, with one error for every back end.

Used by the artifact store and the prediction log so a bad ``s3://`` URL or
missing credentials read the same wherever they are met.
"""

from __future__ import annotations

from typing import Any

from shipyard.errors import ConfigError, reason
from shipyard.extras import boto_errors, require_extra

BOTO_ERRORS = boto_errors()
#: What a broken object store raises: s3fs turns most S3 answers into OSError, but
#: connection and credential problems arrive as botocore exceptions.
BACKEND_ERRORS: tuple[type[Exception], ...] = (OSError, *BOTO_ERRORS)


def open_filesystem(url: str, storage_options: dict[str, Any], *, what: str) -> tuple[Any, str]:
    """``(filesystem, root path)`` for ``url``; ``what`` names the store in errors."""
    import fsspec.core  # s3fs loads only when a store is first used

    if url.lower().startswith(("s3://", "s3a://")):
        require_extra("s3", f"the {what} {url}")
    try:
        return fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"Cannot open the {what} {url}: {reason(exc)}. Check the URL and its storage options."
        ) from exc
