"""What a version's Parquet chunks cannot say by themselves: its categories and its index.

*Categories.* Each chunk is written on its own, so a ``category`` column's chunk
holds a dictionary of its own (only the categories its rows use, in the order the
writer met them). Read back and joined, the column would lose its unused
categories, its order and its ``ordered`` flag, and so its ``.cat.codes``, which
models use. The snapshot records each categorical column's categories (in order)
and flag in the version's manifest; every chunk read back gets exactly that dtype.
When the batches or files of a table give a column different categories, the
version's are their union in first-seen order.

*Index.* The fingerprint ignores a frame's index (``hash_pandas_object(...,
index=False)``), and so does a snapshot of a frame with the default index. A
*named* index (``df.set_index("event_id")``; for a MultiIndex, any named level)
is data, though: the snapshot stores it as leading columns, as
``df.reset_index()`` does (so the version's fingerprint is that of
``df.reset_index()``), and records it, so reading the version sets it back.

>>> import pandas as pd
>>> frame, index = index_as_columns(pd.DataFrame({"x": [1.0]}, index=pd.Index([7], name="id")))
>>> list(frame.columns), index
(['id', 'x'], {'columns': ['id'], 'names': ['id']})
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shipyard.errors import IntegrityError, InvalidInputError

if TYPE_CHECKING:
    import pandas as pd


def named_index(frame: pd.DataFrame) -> bool:
    """Whether the frame's index has a name (any level of a MultiIndex): data to keep."""
    return any(name is not None for name in frame.index.names)


def index_as_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[Any]] | None]:
    """``frame`` with a named index moved to leading columns, and the record that sets
    it back (None, and ``frame`` itself, for an index without a name)."""
    if not named_index(frame):
        return frame, None
    names = [_json_label(name) for name in frame.index.names]
    # Column labels as Parquet stores them (text); an unnamed level of a MultiIndex
    # gets reset_index's own label (level_1).
    labelled = frame.rename_axis([None if n is None else str(n) for n in names])
    try:
        moved = labelled.reset_index()
    except ValueError as exc:  # the label is also a column's
        raise InvalidInputError(
            f"The index {[n for n in names if n is not None]} has the name of one of the "
            f"table's columns ({exc}); rename it, or drop it with reset_index(drop=True), "
            "before snapshotting."
        ) from exc
    columns = [str(c) for c in moved.columns[: len(names)]]
    return moved, {"columns": columns, "names": names}


def _json_label(name: Any) -> Any:
    """An index level's name as the manifest (JSON) keeps it: text and numbers as they
    are, anything else as its text."""
    return name if name is None or isinstance(name, str | int | float | bool) else str(name)


class CategoryRecorder:
    """The categorical dtype of each ``category`` column a snapshot meets, batch by batch."""

    def __init__(self) -> None:
        self._seen: dict[str, Any] = {}  # column -> pd.CategoricalDtype

    def see(self, frame: pd.DataFrame) -> None:
        """Take a batch's categorical columns (their categories join those seen before)."""
        import pandas as pd

        for column, dtype in frame.dtypes.items():
            if not isinstance(dtype, pd.CategoricalDtype):
                continue
            key = str(column)
            known = self._seen.get(key)
            if known is None:
                self._seen[key] = dtype
            elif not known.categories.equals(dtype.categories):
                # Another batch or file with other categories: the union, in first-seen
                # order (the first batch's order and flag win).
                new = dtype.categories[~dtype.categories.isin(known.categories)]
                if len(new):
                    self._seen[key] = pd.CategoricalDtype(
                        known.categories.append(new), ordered=known.ordered
                    )

    def manifest(self) -> dict[str, dict[str, Any]]:
        """The manifest's ``categories``: per column, its categories in order, their
        dtype and the ordered flag. A column whose categories JSON cannot give back
        exactly is left out (it reads back as before: categories of its rows)."""
        out: dict[str, dict[str, Any]] = {}
        for column, dtype in self._seen.items():
            entry = {
                "categories": json.loads(json.dumps(dtype.categories.tolist(), default=str)),
                "dtype": str(dtype.categories.dtype),
                "ordered": bool(dtype.ordered),
            }
            try:
                back = categorical_dtype(entry)
            except (TypeError, ValueError):
                continue
            if back.categories.dtype == dtype.categories.dtype and back.categories.equals(
                dtype.categories
            ):
                out[column] = entry
        return out


def categorical_dtype(entry: dict[str, Any]) -> pd.CategoricalDtype:
    """The dtype a manifest's ``categories`` entry records."""
    import pandas as pd

    categories = pd.Index(entry["categories"], dtype=entry.get("dtype"))
    return pd.CategoricalDtype(categories, ordered=bool(entry.get("ordered", False)))


class Restorer:
    """Gives chunks read back the categories and index their version recorded."""

    def __init__(self, manifest: dict[str, Any], ref: str) -> None:
        self.ref = ref
        recorded = manifest.get("categories") or {}
        self.categories = {c: categorical_dtype(e) for c, e in recorded.items()}
        self.index: dict[str, list[Any]] | None = manifest.get("index")

    def categorize(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each recorded categorical column given exactly its dtype."""
        import pandas as pd

        for column, dtype in self.categories.items():
            if column not in frame.columns:
                continue
            values = frame[column]
            have = values.dtype
            if (
                isinstance(have, pd.CategoricalDtype)
                and have.ordered == dtype.ordered
                and have.categories.equals(dtype.categories)
            ):
                continue
            # Not astype: pandas takes two unordered dtypes with the same categories in
            # another order as equal, and would keep the chunk's order (and codes).
            restored = (
                values.cat.set_categories(dtype.categories, ordered=dtype.ordered)
                if isinstance(have, pd.CategoricalDtype)
                else values.astype(dtype)
            )
            if int(restored.isna().sum()) != int(values.isna().sum()):
                # Cannot happen for a version this code stored; never hand back NaN for
                # values silently.
                raise IntegrityError(
                    f"Column {column!r} of dataset {self.ref} holds values outside the "
                    "categories its manifest records."
                )
            frame[column] = restored  # a frame read for this call: changed in place
        return frame

    def set_index(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the recorded index moved back from its leading columns."""
        if self.index is None:
            return frame
        columns = list(self.index["columns"])
        if not all(c in frame.columns for c in columns):
            return frame
        out = frame.set_index(columns)
        out.index.names = list(self.index["names"])
        return out


__all__ = ["CategoryRecorder", "Restorer", "categorical_dtype", "index_as_columns", "named_index"]
