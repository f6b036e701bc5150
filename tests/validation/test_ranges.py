"""Inferred ranges and tail tests on real data: held-out rows pass, injected faults do not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from shipyard.validation.contract_checks import check_contract
from shipyard.validation.contracts import infer_contract
from shipyard.validation.ranges import expected_range, tail_count_is_chance

DATASETS = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}
SPLITS = 20


def features(name: str) -> pd.DataFrame:
    return DATASETS[name](as_frame=True).data


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """70 % to infer the contract from, the other 30 % to check."""
    order = np.random.default_rng(seed).permutation(len(frame))
    n_train = round(len(frame) * 0.7)
    return frame.iloc[order[:n_train]], frame.iloc[order[n_train:]]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_held_out_rows_pass_the_contract_of_the_rest(name: str) -> None:
    frame = features(name)
    flagged = []
    for seed in range(SPLITS):
        train, held_out = split(frame, seed)
        result = check_contract(infer_contract(train), held_out)
        assert not result.errors, (seed, [v.message for v in result.errors])
        if result.violations:
            flagged.append((seed, [v.message for v in result.violations]))
    # Not one warning, in at least 19 of 20 random splits.
    assert len(flagged) <= 1, flagged


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_injected_faults_are_still_caught(name: str) -> None:
    frame = features(name)
    train, held_out = split(frame, 0)
    contract = infer_contract(train)
    column = str(frame.columns[2])
    values = train[column]
    span = float(values.max() - values.min())

    def check(edit):  # type: ignore[no-untyped-def]
        batch = held_out.reset_index(drop=True).astype({column: object})
        edit(batch)
        return {
            (v.column, v.expectation, v.severity)
            for v in check_contract(contract, batch).violations
        }

    far = float(values.max()) + 5 * span
    assert check(lambda b: b.__setitem__(column, b[column].where(b.index != 3, far))) == {
        (column, "range", "warning")
    }
    assert (column, "type", "error") in check(
        lambda b: b.__setitem__(column, b[column].where(b.index != 3, "n/a"))
    )
    assert (column, "not_null", "error") in check(
        lambda b: b.__setitem__(column, b[column].where(b.index != 3, None))
    )
    if (values >= 0).all():  # never negative in training: a negative value is impossible
        assert check(lambda b: b.__setitem__(column, b[column].where(b.index != 3, -1.0))) == {
            (column, "bounds", "error")
        }
    # A whole batch shifted by 3 standard deviations (150+ rows: the tail share is judged).
    shifted = frame.assign(**{column: frame[column] + 3 * values.std()})
    found = {(v.column, v.expectation) for v in check_contract(contract, shifted).violations}
    assert (column, "range") in found or (column, "tails") in found
    assert check(lambda b: b.drop(columns=[column], inplace=True)) == {(column, "exists", "error")}


def test_a_long_tail_reaches_further_than_a_short_one() -> None:
    rng = np.random.default_rng(0)
    uniform = rng.uniform(0, 1, 1000)
    pareto = rng.pareto(2.0, 1000) + 1
    _, uniform_high = expected_range(uniform, probability=1e-5, integer=False)
    _, pareto_high = expected_range(pareto, probability=1e-5, integer=False)
    assert 1.0 < uniform_high < 1.5  # a bounded column barely moves past its maximum
    assert pareto_high > 2 * pareto.max()  # a power law does: the log-scale fit sees it
    # More rows, a tighter range: the tolerance follows the sample size.
    few = expected_range(rng.normal(0, 1, 30), probability=1e-5, integer=False)
    many = expected_range(rng.normal(0, 1, 30_000), probability=1e-5, integer=False)
    assert few[1] - few[0] > many[1] - many[0]


def test_integer_columns_get_whole_bounds_and_constant_columns_stay_put() -> None:
    low, high = expected_range(np.arange(10, 60), probability=1e-5, integer=True)
    assert low == int(low) and high == int(high) and low < 10 and high > 59
    assert expected_range(np.full(40, 7.0), probability=1e-5, integer=False) == (7.0, 7.0)
    assert expected_range(np.array([3.0]), probability=1e-5, integer=False) == (3.0, 3.0)


def test_tail_counts_against_chance() -> None:
    # 1000 profiled rows: about 2.2 % of new values fall outside p01..p99.
    assert tail_count_is_chance(4, 100, 1000)
    assert not tail_count_is_chance(20, 100, 1000)
    # 60 profiled rows: the quantiles are uncertain, so more is still chance.
    assert tail_count_is_chance(7, 50, 60)
    # Unknown row count: the plain 2 %.
    assert not tail_count_is_chance(12, 100, 0)
