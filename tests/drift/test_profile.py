"""Reference profiles: exact statistics, a bounded sample, bytes round trip.

The point of the profile is that a bounded sample must not change which test
Evidently would run, nor any frequency-based score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.drift import DriftDetector, ReferenceProfile
from shipyard.drift.columns import ColumnType
from shipyard.errors import IntegrityError, InvalidInputError


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": rng.integers(0, 4, n),
            "few": rng.choice([0.5, 1.5, 2.5], n),
            "city": rng.choice(["paris", "rome", "oslo"], n),
            "flag": rng.random(n) < 0.3,
            "cat": pd.Series(rng.choice(["u", "v"], n)).astype("category"),
        }
    )


def test_statistics_are_exact_over_all_rows() -> None:
    frame = _frame(5000)
    frame.loc[:9, "x"] = np.nan
    frame.loc[10, "x"] = np.inf
    profile = ReferenceProfile.from_frame(frame, max_rows=100)
    x = profile.columns["x"]
    finite = frame["x"][np.isfinite(frame["x"])]
    assert (x.n_rows, x.n_values, x.n_missing) == (5000, 4989, 11)
    assert x.min == finite.min() and x.max == finite.max()
    assert x.std == pytest.approx(np.std(finite.to_numpy()))
    assert x.quantiles["0.5"] == pytest.approx(finite.median())
    city = profile.columns["city"]
    assert dict(zip(city.keys, city.counts, strict=True)) == frame["city"].value_counts().to_dict()
    assert profile.columns["k"].type is ColumnType.CATEGORICAL
    assert profile.columns["x"].type is ColumnType.NUMERICAL


def test_sample_is_bounded_uniform_and_seeded() -> None:
    frame = _frame(5000)
    a = ReferenceProfile.from_frame(frame, max_rows=300, seed=1)
    b = ReferenceProfile.from_frame(frame, max_rows=300, seed=1)
    c = ReferenceProfile.from_frame(frame, max_rows=300, seed=2)
    assert len(a.sample) == 300 and a.is_sampled and a.n_rows == 5000
    pd.testing.assert_frame_equal(a.sample, b.sample)
    assert not a.sample.equals(c.sample)
    small = ReferenceProfile.from_frame(frame.head(200), max_rows=300)
    assert not small.is_sampled and len(small.sample) == 200
    everything = ReferenceProfile.from_frame(frame, max_rows=None)
    assert not everything.is_sampled and len(everything.sample) == 5000


def test_bytes_round_trip_keeps_sample_statistics_and_dtypes() -> None:
    profile = ReferenceProfile.from_frame(_frame(2000), max_rows=500)
    data = profile.to_bytes()
    back = ReferenceProfile.from_bytes(data)
    pd.testing.assert_frame_equal(back.sample, profile.sample)
    assert back.columns == profile.columns
    assert (back.n_rows, back.max_rows, back.seed) == (2000, 500, 0)
    assert isinstance(back.sample["cat"].dtype, pd.CategoricalDtype)


def test_corrupt_or_foreign_bytes_are_integrity_errors(tmp_path) -> None:
    with pytest.raises(IntegrityError, match="not a readable Parquet"):
        ReferenceProfile.from_bytes(b"not parquet")
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(IntegrityError, match="no drift profile metadata"):
        ReferenceProfile.from_bytes(path.read_bytes())


def test_empty_reference_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="Reference data is empty"):
        ReferenceProfile.from_frame(pd.DataFrame({"a": []}))


@pytest.mark.parametrize(("n_rows", "expected"), [(1000, "ks"), (1001, "wasserstein")])
def test_test_choice_uses_true_row_count_not_sample_size(n_rows: int, expected: str) -> None:
    ref = _frame(n_rows)
    cur = _frame(800, seed=5)
    sampled = DriftDetector(max_rows=50).fit(ref).score(cur)
    assert sampled.column("x").stattest == expected


def test_frequency_scores_are_exact_despite_sampling() -> None:
    ref, cur = _frame(20_000), _frame(3000, seed=9)
    cur["city"] = np.random.default_rng(3).choice(["paris", "rome", "oslo", "kyiv"], 3000)
    full = DriftDetector(max_rows=20_000).fit(ref).score(cur)
    sampled = DriftDetector(max_rows=500).fit(ref).score(cur)
    for name in ("k", "few", "city", "flag", "cat"):
        assert sampled.column(name).stattest == full.column(name).stattest
        assert sampled.column(name).score == pytest.approx(full.column(name).score, rel=1e-12)
    # Wasserstein on a sample is an estimate whose error shrinks like 1/sqrt(sample).
    larger = DriftDetector(max_rows=5000).fit(ref).score(cur)
    assert larger.column("x").score == pytest.approx(full.column("x").score, abs=0.02)


def test_detector_fits_from_a_stored_profile() -> None:
    ref, cur = _frame(3000), _frame(2000, seed=4)
    from_frame = DriftDetector().fit(ref).score(cur)
    stored = ReferenceProfile.from_bytes(ReferenceProfile.from_frame(ref).to_bytes())
    assert DriftDetector().fit(stored).score(cur) == from_frame
