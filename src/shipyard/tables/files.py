"""Opening a table file, local or on s3://, with its compression undone.

One place turns "no such file", "no such key", missing credentials and a
missing s3 extra into :class:`~shipyard.errors.TableError`, so readers only
parse bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from shipyard.config import Settings
from shipyard.extras import boto_errors, require_extra
from shipyard.tables.locations import TableLocation, table_error

#: What parsing a damaged or foreign file raises in pandas, pyarrow and fsspec:
#: ValueError covers pandas' ParserError / EmptyDataError and JSONDecodeError.
READ_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    OSError,
    UnicodeError,
    pa.ArrowException,
    *boto_errors(),
)


def storage_options(settings: Settings) -> dict[str, Any]:
    """fsspec options for ``s3://`` tables from the settings (the S3 endpoint, if set);
    credentials come from the usual AWS environment variables and files."""
    if settings.s3_endpoint_url is None:
        return {}
    return {"client_kwargs": {"endpoint_url": settings.s3_endpoint_url}}


def check_readable(where: TableLocation) -> None:
    """Fail early, naming the file, when a local file is missing (remote ones fail on open)."""
    if not where.is_local:
        return
    path = Path(where.path)
    if not path.exists():
        raise table_error(where.describe(), "there is no such file")
    if not path.is_file():
        raise table_error(where.describe(), "it is not a file")


@contextmanager
def open_file(where: TableLocation, storage_options: dict[str, Any]) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed; closed when the block ends."""
    check_readable(where)
    if where.compression is None and "://" not in where.path:
        # A plain local file needs no fsspec (a twentieth of a second to import).
        try:
            handle: IO[bytes] = open(where.path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise table_error(where.describe(), f"it cannot be opened: {exc}") from exc
        with handle:
            yield handle
        return
    import fsspec  # loads s3fs only when an s3:// table is read

    if where.is_remote:
        require_extra("s3", f"reading {where.path}")
    try:
        opened = fsspec.open(
            where.path,
            "rb",
            compression=where.compression,
            **(storage_options if where.is_remote else {}),
        )
        handle = opened.open()
    except FileNotFoundError as exc:
        raise table_error(where.describe(), "there is no such file") from exc
    except READ_ERRORS as exc:
        raise table_error(where.describe(), f"it cannot be opened: {exc}") from exc
    try:
        yield handle
    finally:
        handle.close()
