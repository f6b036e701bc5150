import pandas as pd
import pytest

from shipyard.errors import InvalidInputError
from shipyard.tracking.fingerprint import fingerprint


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def test_same_data_same_hash_whatever_the_index() -> None:
    df = _frame()
    shuffled_index = df.set_axis([10, 20, 30])
    assert fingerprint(df).content_hash == fingerprint(shuffled_index).content_hash
    assert fingerprint(df).n_rows == 3
    assert fingerprint(df).schema == {"a": "int64", "b": df["b"].dtype.name}


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(a=[1, 2, 4]),  # one value
        lambda df: df.iloc[[1, 0, 2]],  # row order
        lambda df: df[["b", "a"]],  # column order
        lambda df: df.astype({"a": "float64"}),  # dtype
        lambda df: df.rename(columns={"a": "c"}),  # name
        lambda df: df.iloc[:2],  # row count
    ],
)
def test_any_change_changes_the_hash(change) -> None:  # type: ignore[no-untyped-def]
    df = _frame()
    assert fingerprint(change(df)).content_hash != fingerprint(df).content_hash


def test_empty_frame_and_source() -> None:
    fp = fingerprint(pd.DataFrame({"a": pd.Series([], dtype="int64")}), source="train.parquet")
    assert fp.n_rows == 0 and fp.source == "train.parquet"
    assert fp.to_dict()["content_hash"] == fp.content_hash


def test_rejects_non_frames() -> None:
    with pytest.raises(InvalidInputError, match="DataFrame"):
        fingerprint([[1, 2]])  # type: ignore[arg-type]
