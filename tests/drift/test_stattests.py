"""Every test against scipy called directly, and Evidently's choice of test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from shipyard.drift.columns import ColumnType
from shipyard.drift.stattests import (
    STATTESTS,
    chisquare,
    default_stattest,
    get_stattest,
    hellinger,
    jensenshannon,
    kl_div,
    ks,
    psi,
    wasserstein,
    z,
)
from shipyard.errors import InvalidInputError

NUM, CAT = ColumnType.NUMERICAL, ColumnType.CATEGORICAL
rng = np.random.default_rng(42)
REF = rng.normal(0, 1, 700)
CUR = rng.normal(0.2, 1.1, 500)


def test_ks_is_scipy_two_sample_p_value() -> None:
    score, drifted = ks(REF, CUR, NUM, 0.05)
    expected = stats.ks_2samp(REF, CUR).pvalue
    assert score == expected
    assert drifted == (expected <= 0.05)


def test_ks_drops_nan_and_infinities_first() -> None:
    dirty = np.r_[REF, np.nan, np.inf, -np.inf]
    assert ks(dirty, CUR, NUM, 0.05) == ks(REF, CUR, NUM, 0.05)


def test_ks_drifts_at_equality_but_chisquare_does_not() -> None:
    # Evidently compares KS with <= and the other p-value tests with <.
    p_ks, _ = ks(REF, CUR, NUM, 0.05)
    assert ks(REF, CUR, NUM, p_ks)[1] is True
    ref, cur = np.repeat(["a", "b", "c"], [30, 30, 40]), np.repeat(["a", "b", "c"], [20, 40, 40])
    p_chi, _ = chisquare(ref, cur, CAT, 0.05)
    assert chisquare(ref, cur, CAT, p_chi)[1] is False


def test_chisquare_compares_current_counts_to_rescaled_reference_counts() -> None:
    ref = np.repeat(["a", "b", "c"], [500, 300, 200])
    cur = np.repeat(["a", "b", "c"], [200, 250, 150])
    score, drifted = chisquare(ref, cur, CAT, 0.05)
    f_exp = np.array([500, 300, 200]) * (600 / 1000)
    expected = stats.chisquare([200, 250, 150], f_exp).pvalue
    assert score == pytest.approx(expected, rel=1e-12)
    assert drifted == (expected < 0.05)


def test_chisquare_unseen_category_gives_zero_p_value() -> None:
    ref = np.repeat(["a", "b"], [50, 50])
    cur = np.repeat(["a", "b", "new"], [45, 45, 10])
    assert chisquare(ref, cur, CAT, 0.05) == (0.0, True)


def test_z_matches_two_proportion_formula() -> None:
    ref = np.repeat(["no", "yes"], [600, 400])
    cur = np.repeat(["no", "yes"], [250, 250])
    score, drifted = z(ref, cur, CAT, 0.05)
    # "no" sorts first, so the proportion tested is that of "yes".
    p1, p2, n1, n2 = 0.4, 0.5, 1000, 500
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z_stat = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    expected = 2 * (1 - stats.norm.cdf(abs(z_stat)))
    assert score == pytest.approx(expected, rel=1e-12)
    assert drifted is True


def test_z_on_one_shared_constant_is_no_drift() -> None:
    assert z(np.full(10, 3.0), np.full(7, 3.0), NUM, 0.05) == (1.0, False)


def test_z_on_two_different_constants_is_drift() -> None:
    score, drifted = z(np.full(50, 0.0), np.full(50, 1.0), NUM, 0.05)
    assert score < 1e-10 and drifted


def test_wasserstein_is_normed_by_reference_std() -> None:
    score, drifted = wasserstein(REF, CUR, NUM, 0.1)
    expected = stats.wasserstein_distance(REF, CUR) / np.std(REF)
    assert score == pytest.approx(expected, rel=1e-12)
    assert drifted == (expected >= 0.1)


def test_wasserstein_floors_the_norm_of_a_constant_reference() -> None:
    score, _ = wasserstein(np.full(100, 2.0), np.full(100, 2.001), NUM, 0.1)
    assert score == pytest.approx(0.001 / 0.001)


def _sturges_shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    return np.histogram(ref, bins)[0] / len(ref), np.histogram(cur, bins)[0] / len(cur)


def test_jensenshannon_numerical_uses_sturges_bins_over_both_sides() -> None:
    r, c = _sturges_shares(REF, CUR)
    score, _ = jensenshannon(REF, CUR, NUM, 0.1)
    assert score == pytest.approx(distance.jensenshannon(r, c), rel=1e-12)


def test_jensenshannon_categorical_uses_value_shares() -> None:
    ref = np.repeat(["a", "b"], [70, 30])
    cur = np.repeat(["a", "b", "c"], [40, 40, 20])
    score, drifted = jensenshannon(ref, cur, CAT, 0.1)
    expected = distance.jensenshannon([0.7, 0.3, 0.0], [0.4, 0.4, 0.2])
    assert score == pytest.approx(expected, rel=1e-12)
    assert drifted


def _fill(p: np.ndarray) -> np.ndarray:
    p = p.copy()
    low = p[p > 0].min()
    p[p == 0] = low / 1e6 if low <= 0.0001 else 0.0001
    return p


def test_psi_and_kl_fill_empty_bins_like_evidently() -> None:
    ref = np.repeat(["a", "b"], [70, 30])
    cur = np.repeat(["a", "b", "c"], [40, 40, 20])
    r = _fill(np.array([0.7, 0.3, 0.0]))
    c = _fill(np.array([0.4, 0.4, 0.2]))
    assert psi(ref, cur, CAT, 0.1)[0] == pytest.approx(np.sum((r - c) * np.log(r / c)))
    assert kl_div(ref, cur, CAT, 0.1)[0] == pytest.approx(stats.entropy(r, c))


def test_psi_numerical_histogram_matches_direct_computation() -> None:
    r, c = _sturges_shares(REF, CUR)
    r, c = _fill(r), _fill(c)
    assert psi(REF, CUR, NUM, 0.1)[0] == pytest.approx(np.sum((r - c) * np.log(r / c)), rel=1e-12)


def test_hellinger_categorical_and_numerical() -> None:
    ref = np.repeat(["a", "b"], [70, 30])
    cur = np.repeat(["a", "b", "c"], [40, 40, 20])
    bc = np.sqrt(0.7 * 0.4) + np.sqrt(0.3 * 0.4)
    assert hellinger(ref, cur, CAT, 0.1)[0] == pytest.approx(np.sqrt(1 - bc))
    keys = np.union1d(REF, CUR)
    bins = np.histogram_bin_edges(keys, bins="sturges")
    h1 = np.histogram(REF, bins=bins, density=True)[0]
    h2 = np.histogram(CUR, bins=bins, density=True)[0]
    width = (bins.max() - bins.min()) / (len(bins) - 1)
    expected = np.sqrt(1 - np.clip(np.sum(np.sqrt(h1 * h2)) * width, 0, 1))
    assert hellinger(REF, CUR, NUM, 0.1)[0] == pytest.approx(expected, rel=1e-12)


def test_identical_samples_have_no_drift_under_every_test() -> None:
    for name, test in STATTESTS.items():
        ctype = NUM if NUM in test.column_types else CAT
        data = REF if ctype is NUM else np.repeat(["a", "b", "c"], [5, 10, 20])
        score, drifted = test(data, data, ctype)
        assert not drifted, name
        assert np.isfinite(score), name


def test_registry_defaults_match_evidently() -> None:
    defaults = {name: t.default_threshold for name, t in STATTESTS.items()}
    assert defaults == {
        "ks": 0.05,
        "chisquare": 0.05,
        "z": 0.05,
        "wasserstein": 0.1,
        "jensenshannon": 0.1,
        "psi": 0.1,
        "kl_div": 0.1,
        "hellinger": 0.1,
    }


@pytest.mark.parametrize(
    ("ctype", "n_ref", "n_unique", "expected"),
    [
        (NUM, 1000, 6, "ks"),
        (NUM, 1000, 5, "chisquare"),
        (NUM, 1000, 3, "chisquare"),
        (NUM, 1000, 2, "z"),
        (NUM, 1000, 1, "z"),
        (CAT, 1000, 3, "chisquare"),
        (CAT, 1000, 2, "z"),
        (CAT, 10, 50, "chisquare"),
        (NUM, 1001, 6, "wasserstein"),
        (NUM, 1001, 5, "jensenshannon"),
        (NUM, 1001, 2, "jensenshannon"),
        (CAT, 1001, 2, "jensenshannon"),
        (CAT, 10**6, 500, "jensenshannon"),
    ],
)
def test_default_stattest_follows_evidently(ctype, n_ref, n_unique, expected) -> None:
    assert default_stattest(ctype, n_ref, n_unique).name == expected


def test_unknown_test_name_lists_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="choose one of"):
        get_stattest("anderson")


def test_test_on_wrong_column_type_is_rejected_with_alternatives() -> None:
    with pytest.raises(InvalidInputError, match="'ks' does not apply to categorical") as info:
        get_stattest("ks", CAT, column="city")
    assert "city" in str(info.value) and "chisquare" in str(info.value)
