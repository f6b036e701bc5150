"""Dataset fingerprints: schema, row count and a content hash.

Recorded with every run so a model version links to the exact data that made
it. The hash covers values, column names and dtypes, and does not depend on
pandas' memory layout; a reordered column set gives another hash, as it
changes what a model sees.

>>> import pandas as pd
>>> fp = fingerprint(pd.DataFrame({"a": [1, 2]}))
>>> fp.n_rows, fp.schema
(2, {'a': 'int64'})
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from pandas.util import hash_pandas_object

from shipyard.errors import InvalidInputError


@dataclass(frozen=True)
class DatasetFingerprint:
    schema: dict[str, str]
    n_rows: int
    content_hash: str
    source: str | None = None
    #: The dataset version (``churn-training:3``) the rows were stored as, when
    #: ``run.log_dataset(..., snapshot=True)`` stored them; not part of the identity.
    snapshot: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["snapshot"] is None:  # the dict a fingerprint always had
            del out["snapshot"]
        return out


def fingerprint(data: pd.DataFrame, *, source: str | None = None) -> DatasetFingerprint:
    """Fingerprint a DataFrame (``source`` records where it came from, e.g. a path)."""
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError(
            f"Expected a pandas DataFrame to fingerprint, got {type(data).__name__}."
        )
    digest = hashlib.sha256()
    schema = {str(col): str(dtype) for col, dtype in data.dtypes.items()}
    digest.update(repr(sorted(schema.items())).encode())
    digest.update(repr(list(schema)).encode())
    if len(data):
        # index=False: the same rows loaded twice must hash alike whatever their index.
        row_hashes = hash_pandas_object(data, index=False).to_numpy()
        digest.update(row_hashes.tobytes())
    return DatasetFingerprint(
        schema=schema, n_rows=len(data), content_hash=digest.hexdigest(), source=source
    )
