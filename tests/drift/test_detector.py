"""DriftDetector: Evidently's verdicts, scikit-learn's verbs, clear bad-input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from shipyard.drift import DriftDetector, NotFittedError
from shipyard.drift.columns import ColumnType
from shipyard.errors import InvalidInputError, SchemaError, ShipyardError

EXPECTED_1000 = {
    "u2": "z",
    "u5": "chisquare",
    "u6": "ks",
    "u20": "ks",
    "u21": "ks",
    "i21": "ks",
    "i3": "chisquare",
    "normal": "ks",
    "nan_inf": "ks",
    "const": "z",
    "cat_unseen": "chisquare",
    "cat2": "z",
    "flag": "z",
    "cat_nan": "chisquare",
}


def test_small_reference_uses_p_value_tests(edge_1000) -> None:
    ref, cur = edge_1000
    result = DriftDetector().fit(ref).score(cur)
    assert {c.column: c.stattest for c in result.columns} == EXPECTED_1000
    assert result.column("const").score == 1.0 and not result.column("const").drift_detected
    assert result.column("cat_unseen").score == 0.0 and result.column("cat_unseen").drift_detected


def test_reference_over_1000_rows_uses_distances(edge_1001) -> None:
    ref, cur = edge_1001
    tests = {c.column: c.stattest for c in DriftDetector().fit(ref).score(cur).columns}
    assert tests["normal"] == tests["u6"] == tests["i21"] == "wasserstein"
    assert tests["u2"] == tests["u5"] == tests["const"] == "jensenshannon"
    assert tests["cat_unseen"] == tests["flag"] == tests["i3"] == "jensenshannon"
    # 10% NaN and 4 infinities leave <= 1000 reference values: back to small-data tests.
    assert tests["nan_inf"] == "ks" and tests["cat_nan"] == "chisquare"


def test_scores_equal_scipy_on_the_cleaned_columns(edge_1000) -> None:
    ref, cur = edge_1000
    result = DriftDetector().fit(ref).score(cur)
    r, c = ref["nan_inf"].to_numpy(), cur["nan_inf"].to_numpy()
    expected = stats.ks_2samp(r[np.isfinite(r)], c[np.isfinite(c)]).pvalue
    assert result.column("nan_inf").score == expected


def test_dataset_drift_uses_share_with_greater_or_equal() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({f"c{i}": rng.normal(size=2000) for i in range(4)})
    cur = ref.copy()
    cur[["c0", "c1"]] += 1.0  # exactly half the columns drift
    result = DriftDetector().fit(ref).score(cur)
    assert (result.n_columns, result.n_drifted, result.share) == (4, 2, 0.5)
    assert result.dataset_drift is True
    assert DriftDetector(drift_share=0.51).fit(ref).score(cur).dataset_drift is False


def test_score_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError, match=r"call fit\(reference\)"):
        DriftDetector().score(pd.DataFrame({"a": [1.0]}))
    assert issubclass(NotFittedError, ShipyardError)


def test_constructor_only_stores_settings() -> None:
    det = DriftDetector(stattest="psi", threshold=0.2, drift_share=0.3, fdr=True, n_jobs=1)
    assert (det.stattest, det.threshold, det.drift_share, det.fdr) == ("psi", 0.2, 0.3, True)
    assert not hasattr(det, "profile_")


def test_fit_learns_trailing_underscore_state(edge_1000) -> None:
    det = DriftDetector(categorical=["u21"]).fit(edge_1000[0])
    assert det.column_types_["u21"] is ColumnType.CATEGORICAL
    assert det.column_types_["normal"] is ColumnType.NUMERICAL
    assert det.profile_.n_rows == 1000
    assert det.feature_names_in_ == list(edge_1000[0].columns)


def test_missing_and_extra_columns_are_named(edge_1000) -> None:
    ref, cur = edge_1000
    cur = cur.drop(columns=["normal", "u2"]).assign(surprise=1)
    with pytest.raises(SchemaError) as info:
        DriftDetector().fit(ref).score(cur)
    message = str(info.value)
    assert "['u2', 'normal']" in message and "['surprise']" in message
    assert info.value.field == "u2"


@pytest.mark.parametrize("n_rows", [0, 1])
def test_empty_or_single_row_current_is_invalid_input(edge_1000, n_rows: int) -> None:
    ref, cur = edge_1000
    with pytest.raises(InvalidInputError, match=f"Current data has {n_rows} row"):
        DriftDetector().fit(ref).score(cur.head(n_rows))


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("normal", np.nan),
        ("normal", np.inf),
        ("normal", -np.inf),
        ("nan_inf", "mixed"),
        ("nan_inf", "one left"),
        ("i21", np.nan),
        ("cat2", None),
        ("cat_nan", None),
        ("flag", None),
    ],
)
def test_a_column_that_became_all_nan_or_inf_vanished_and_the_dataset_drifts(
    edge_1000, column: str, values: object
) -> None:
    """A feature that stopped arriving is drift: one such column is enough, never silence."""
    ref, cur = edge_1000
    n = len(cur)
    if values == "mixed":
        values = np.where(
            np.arange(n) % 3 == 0, np.nan, np.where(np.arange(n) % 3, np.inf, -np.inf)
        )
    elif values == "one left":
        values = np.r_[1.0, np.full(n - 1, np.nan)]
    cur = cur.assign(**{column: values})
    result = DriftDetector().fit(ref).score(cur)
    vanished = result.column(column)
    assert (vanished.stattest, vanished.drift_detected) == ("vanished", True)
    assert vanished.score < vanished.threshold == 2  # values left vs the fewest a test needs
    assert result.vanished_columns == [column]
    assert result.dataset_drift  # though 1 of 14 columns is far below the 0.5 share
    assert result.n_columns == len(EXPECTED_1000)
    assert column not in {s.column for s in result.skipped}
    assert result.to_dict()["dataset"]["vanished"] == [column]
    # The same verdict whatever the test settings: named tests, FDR, a share of 1.
    for options in ({"fdr": True}, {"drift_share": 1.0}, {"stattest": "psi"}):
        assert DriftDetector(**options).fit(ref).score(cur).vanished_columns == [column]


def test_every_column_vanished_is_drift_not_an_error() -> None:
    ref = pd.DataFrame({"a": np.arange(50.0), "b": ["x", "y"] * 25})
    result = DriftDetector().fit(ref).score(pd.DataFrame({"a": [np.nan, np.inf], "b": [None] * 2}))
    assert result.vanished_columns == ["a", "b"] and result.dataset_drift


def test_a_reference_column_without_data_is_not_tested() -> None:
    ref = pd.DataFrame({"a": np.arange(50.0), "empty": np.nan})
    result = DriftDetector().fit(ref).score(ref.assign(empty=1.0))
    skipped = {s.column: s.reason for s in result.skipped}
    assert "0 value(s) in the reference data" in skipped["empty"]
    assert not result.dataset_drift and result.vanished_columns == []


def test_all_columns_without_reference_data_is_invalid_input() -> None:
    ref = pd.DataFrame({"a": [np.nan] * 50})
    with pytest.raises(InvalidInputError, match="No column could be tested"):
        DriftDetector().fit(ref).score(pd.DataFrame({"a": [1.0, 2.0]}))


def test_text_and_datetime_columns_are_skipped_with_reason() -> None:
    n = 100
    ref = pd.DataFrame(
        {
            "x": np.arange(n, dtype=float),
            "note": [f"free text {i}" for i in range(n)],
            "at": pd.date_range("2024-01-01", periods=n),
        }
    )
    result = DriftDetector().fit(ref).score(ref)
    reasons = {s.column: s.reason for s in result.skipped}
    assert "categorical=[...]" in reasons["note"] and "datetime" in reasons["at"]
    assert [c.column for c in result.columns] == ["x"]
    forced = DriftDetector(categorical=["note"]).fit(ref).score(ref)
    assert forced.column("note").type == "categorical"


def test_numerical_override_on_text_is_schema_error() -> None:
    ref = pd.DataFrame({"s": ["a", "b"] * 20})
    with pytest.raises(SchemaError, match="'s'"):
        DriftDetector(numerical=["s"]).fit(ref).score(ref)


def test_named_test_and_thresholds_per_column(edge_1001) -> None:
    ref, cur = edge_1001
    det = DriftDetector(stattest={"normal": "psi", "cat2": "hellinger"}, threshold={"normal": 0.5})
    result = det.fit(ref).score(cur)
    assert (result.column("normal").stattest, result.column("normal").threshold) == ("psi", 0.5)
    assert result.column("cat2").stattest == "hellinger"
    assert result.column("u21").stattest == "wasserstein"  # others keep the default


def test_test_not_applicable_to_a_column_fails_at_fit(edge_1000) -> None:
    with pytest.raises(InvalidInputError, match="'ks' does not apply to categorical"):
        DriftDetector(stattest="ks").fit(edge_1000[0])


def test_per_column_setting_for_unknown_column(edge_1000) -> None:
    with pytest.raises(SchemaError, match="nope"):
        DriftDetector(threshold={"nope": 0.1}).fit(edge_1000[0])


@pytest.mark.parametrize("bad", [{"drift_share": 0.0}, {"drift_share": 1.5}, {"threshold": -1}])
def test_bad_settings_are_rejected_at_fit(edge_1000, bad) -> None:
    with pytest.raises(InvalidInputError):
        DriftDetector(**bad).fit(edge_1000[0])


def test_fdr_adjusts_p_values_with_benjamini_hochberg(edge_1000) -> None:
    ref, cur = edge_1000
    raw = DriftDetector().fit(ref).score(cur)
    adjusted = DriftDetector(fdr=True).fit(ref).score(cur)
    expected = stats.false_discovery_control([c.score for c in raw.columns], method="bh")
    for col, p in zip(adjusted.columns, expected, strict=True):
        assert col.score == pytest.approx(p)
        assert col.drift_detected == ((p <= 0.05) if col.stattest == "ks" else (p < 0.05))
    assert adjusted.n_drifted <= raw.n_drifted


def test_parallel_and_serial_agree(edge_1001) -> None:
    ref, cur = edge_1001
    assert DriftDetector(n_jobs=1).fit(ref).score(cur) == DriftDetector(n_jobs=2).fit(ref).score(
        cur
    )


def test_prediction_column_is_just_a_column() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"f": rng.normal(size=3000), "prediction": rng.choice([0, 1], 3000)})
    cur = ref.assign(prediction=rng.choice([0, 1], 3000, p=[0.2, 0.8]))
    result = DriftDetector().fit(ref).score(cur)
    assert result.drifted_columns == ["prediction"]
