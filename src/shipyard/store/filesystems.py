"""Opening fsspec filesystems by URL, with one error for every back end.

Used by the artifact store and the prediction log so a bad ``s3://`` URL or
missing credentials read the same wherever they are met.
"""

from __future__ import annotations

from typing import Any

from shipyard.errors import ConfigError


def open_filesystem(url: str, storage_options: dict[str, Any], *, what: str) -> tuple[Any, str]:
    """``(filesystem, root path)`` for ``url``; ``what`` names the store in errors."""
    import fsspec.core  # s3fs and botocore load only when a store is first used

    try:
        return fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"Cannot open the {what} {url}: {exc}. Check the URL and its storage options."
        ) from exc
