"""One exception tree for everything Shipyard raises on purpose.

Every message says what happened and what to do about it. Errors differ by
type, never by a code string; third-party errors are translated at the adapter
that met them (``raise ... from exc``).

    ShipyardError
    ├── ConfigError                 settings that cannot be used
    │   └── MissingExtraError       an optional dependency (shipyard[extra]) is missing
    ├── NotFoundError               something named does not exist
    │   ├── ModelNotFoundError
    │   ├── VersionNotFoundError
    │   ├── AliasNotFoundError
    │   ├── RunNotFoundError
    │   ├── ExperimentNotFoundError
    │   ├── DatasetNotFoundError    a dataset or dataset version
    │   └── ArtifactNotFoundError
    ├── InvalidInputError           user input that breaks a rule (a 4xx)
    │   ├── InvalidReferenceError   a model reference that does not parse
    │   ├── TableError              a table (file, s3:// object, SQL) that cannot be read
    │   └── SchemaError             data that does not match a signature
    │       └── UnscorableInputError  right types, but the model cannot score it
    ├── ConflictError               already exists / changed concurrently
    ├── IntegrityError              stored bytes are not what was written
    ├── UnsafeArtifactError         loading would run untrusted code
    ├── ManifestError               a model package that cannot be read
    └── StoreError                  a storage backend failed
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose."""


class ConfigError(ShipyardError):
    """A setting is missing or cannot be used."""


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message names the extra to add."""


class NotFoundError(ShipyardError):
    """Something referred to by name does not exist."""


class ModelNotFoundError(NotFoundError):
    """No registered model has that name."""


class VersionNotFoundError(NotFoundError):
    """The model exists but not that version."""


class AliasNotFoundError(NotFoundError):
    """The model exists but has no such alias."""


class RunNotFoundError(NotFoundError):
    """No tracking run has that id."""


class ExperimentNotFoundError(NotFoundError):
    """No experiment has that name or id."""


class DatasetNotFoundError(NotFoundError):
    """No dataset, or no such version of it, has been snapshotted."""


class ArtifactNotFoundError(NotFoundError):
    """No artifact is stored under that digest or path."""


class InvalidInputError(ShipyardError):
    """Input from a user or a client breaks a rule; maps to a 4xx answer."""


class InvalidReferenceError(InvalidInputError):
    """A model reference such as ``iris@staging`` does not parse."""


class TableError(InvalidInputError):
    """A table cannot be read: missing, of a format Shipyard does not read, or damaged.

    The message names the table and ends with the formats Shipyard reads, so
    every command that takes a table answers a bad one the same way.
    """


class SchemaError(InvalidInputError):
    """Data does not match a model signature.

    ``field`` names the offending column (``None`` when the whole input is
    wrong, e.g. not a table at all) and ``expected`` says what was wanted.
    ``rows`` holds the offending row numbers when they are known.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        expected: str | None = None,
        rows: list[int] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.expected = expected
        self.rows = rows or []


class UnscorableInputError(SchemaError):
    """Input of the right types that the model still cannot score (a 422 for that row).

    E.g. a finite but huge number that overflows inside the model, so that its
    probabilities or its regression value come out NaN or infinite: no label can
    be read off them. ``rows`` names the rows.
    """


class ConflictError(ShipyardError):
    """The thing already exists, or someone else changed it first."""


class IntegrityError(ShipyardError):
    """Stored bytes do not match the checksum they were written with."""


class UnsafeArtifactError(ShipyardError):
    """Loading the artifact would execute code that is not trusted."""


class ManifestError(ShipyardError):
    """A model package's manifest is missing, unreadable or inconsistent."""


class StoreError(ShipyardError):
    """A storage backend (database, object store) failed."""


def reason(exc: BaseException) -> str:
    """An exception's text to go inside a sentence of ours: trailing periods dropped.

    Messages wrap a library's error as ``f"...: {reason(exc)}. Check ..."``; many such
    texts end in a period already ("Connection refused."), which would read "..".
    """
    return str(exc).rstrip().rstrip(".").rstrip()


#: Offending rows an error names before "and N more".
ROWS_SHOWN = 10


def rows_text(rows: list[int]) -> str:
    """``rows 3, 17 and 2 more (0-based)``: the rows an error names, the first few."""
    shown = ", ".join(str(r) for r in rows[:ROWS_SHOWN])
    more = f" and {len(rows) - ROWS_SHOWN} more" if len(rows) > ROWS_SHOWN else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{noun} {shown}{more} (0-based)"
