"""Dataset references: ``visits`` (the newest version) or ``visits:3``.

>>> parse_data_ref("visits:3"), parse_data_ref("visits")
(('visits', 3), ('visits', None))
"""

from __future__ import annotations

from shipyard.errors import InvalidInputError
from shipyard.names import check_name


def parse_data_ref(ref: str) -> tuple[str, int | None]:
    """``(name, version)``; the version is None when ``ref`` names only the dataset."""
    name, sep, number = str(ref).rpartition(":")
    if not sep:
        return check_name(ref, kind="Dataset name"), None
    if not number.isdigit() or int(number) < 1:
        raise InvalidInputError(
            f"Dataset reference {ref!r} is not NAME or NAME:VERSION (a version is a "
            "positive whole number, e.g. visits:3)."
        )
    return check_name(name, kind="Dataset name"), int(number)


__all__ = ["parse_data_ref"]
