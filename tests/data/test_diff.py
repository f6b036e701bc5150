"""``diff_versions``: rows added, removed and changed by key; schema changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from shipyard import Shipyard
from shipyard.data.diff import diff_versions
from shipyard.data.snapshots import DataVersions
from shipyard.errors import InvalidInputError


def test_diff_by_key_and_whole_rows(client: Shipyard) -> None:
    frame = load_wine(as_frame=True).frame.assign(row_id=np.arange(178))
    data = DataVersions(
        client.datasets,
        client.artifacts,
        actor="tester",
        target_rows=16,
        storage_options=client.data.storage_options,
    )
    data.snapshot(frame, name="wine")
    new = frame.drop(index=[3, 4]).copy()
    new.loc[new.row_id == 100, "alcohol"] = 99.0
    extra = frame.iloc[:5].assign(row_id=np.arange(1000, 1005))
    data.snapshot(pd.concat([new, extra], ignore_index=True), name="wine")

    by_key = diff_versions(data, "wine:1", "wine:2", key=["row_id"])
    assert (by_key.added, by_key.removed, by_key.changed) == (5, 2, 1)
    assert by_key.unchanged == 178 - 3
    assert by_key.examples["changed"] == [100]
    assert by_key.examples["removed"] == [3, 4]

    whole = diff_versions(data, "wine:1", "wine:2")
    assert (whole.added, whole.removed, whole.changed) == (6, 3, 0)
    assert not whole.identical
    assert diff_versions(data, "wine:1", "wine:1").identical


def test_diff_reports_schema_changes(client: Shipyard) -> None:
    frame = load_wine(as_frame=True).frame
    client.data.snapshot(frame, name="wine")
    changed = frame.drop(columns=["ash"]).assign(target=frame["target"].astype(float), note="x")
    client.data.snapshot(changed, name="wine")
    result = diff_versions(client.data, "wine:1", "wine:2")
    assert result.columns_added == ["note"]
    assert result.columns_removed == ["ash"]
    assert result.types_changed == {"target": ["int64", "float64"]}


def test_a_duplicate_key_is_shown_as_plain_values(client: Shipyard) -> None:
    old = pd.DataFrame({"k": np.array([1], dtype=np.int64), "s": ["a"], "v": [0.5]})
    new = pd.DataFrame({"k": np.array([9, 9], dtype=np.int64), "s": ["b", "b"], "v": [1.0, 2.0]})
    client.data.snapshot(old, name="t")
    client.data.snapshot(new, name="t")
    with pytest.raises(InvalidInputError) as caught:
        diff_versions(client.data, "t:1", "t:2", key=["k", "s"])
    assert "Key k, s is not unique" in str(caught.value)
    assert "(e.g. (9, 'b'))" in str(caught.value)
    assert "np." not in str(caught.value)
