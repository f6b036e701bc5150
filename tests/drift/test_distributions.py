"""Plot data: shared histogram bins, value shares, pooled long tails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.drift import DriftDetector
from shipyard.drift.distributions import MAX_BARS, column_distributions


@pytest.fixture(scope="module")
def dists():
    rng = np.random.default_rng(0)
    n = 2000
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "few": rng.choice([1.0, 2.0, 3.0], n),
            "city": rng.choice([f"c{i:02d}" for i in range(30)], n),
            "color": rng.choice(["red", "blue"], n),
        }
    )
    cur = ref.assign(x=ref["x"] + 1, color=rng.choice(["red", "blue", "green"], n))
    return column_distributions(DriftDetector().fit(ref), cur)


def test_numerical_histogram_shares_sum_to_one(dists) -> None:
    x = dists["x"]
    assert x.kind == "histogram" and len(x.edges) == len(x.reference) + 1
    assert sum(x.reference) == pytest.approx(1) and sum(x.current) == pytest.approx(1)


def test_few_numerical_values_are_bars_in_value_order(dists) -> None:
    assert dists["few"].kind == "bars" and dists["few"].labels == ["1.0", "2.0", "3.0"]


def test_long_tails_are_pooled(dists) -> None:
    city = dists["city"]
    assert len(city.labels) == MAX_BARS + 1 and city.labels[-1] == "(other 10)"
    assert sum(city.reference) == pytest.approx(1)


def test_values_new_in_current_are_flagged(dists) -> None:
    color = dists["color"]
    flagged = dict(zip(color.labels, color.new_in_current, strict=True))
    assert flagged == {"red": False, "blue": False, "green": True}
