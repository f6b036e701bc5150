"""Statistical tests for drift, with Evidently 0.7's formulas and comparisons.

Each test is a small function ``(reference, current, column_type, threshold)
-> (score, drifted)``. ``reference``/``current`` are numpy arrays (NaN and
+-inf are dropped first, as Evidently does) or :class:`ColumnValues` (used by
the detector so a bounded reference profile can supply exact counts).

======================  ===============  =========  ===================
name                    score            threshold  drifted when
======================  ===============  =========  ===================
``ks``                  p-value          0.05       ``p <= threshold``
``chisquare``           p-value          0.05       ``p < threshold``
``z``                   p-value          0.05       ``p < threshold``
``wasserstein``         distance/std     0.1        ``d >= threshold``
``jensenshannon``       distance         0.1        ``d >= threshold``
``psi``                 index            0.1        ``d >= threshold``
``kl_div``              divergence       0.1        ``d >= threshold``
``hellinger``           distance         0.1        ``d >= threshold``
======================  ===============  =========  ===================

(The ``<=`` of KS against the ``<`` of the other p-value tests is Evidently's.)

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> score, drifted = ks(rng.normal(size=500), rng.normal(1, size=500), "numerical", 0.05)
    >>> bool(drifted)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.drift.binning import aligned_counts, binned_shares, sturges_edges
from shipyard.drift.columns import ColumnType
from shipyard.drift.values import ColumnValues, as_values
from shipyard.errors import InvalidInputError

# scipy is imported inside the tests that need it: `import scipy.stats` alone
# costs seconds, and the default tests on large data (Wasserstein, Jensen-Shannon)
# need only numpy and scipy.special.

# scipy >= 1.15 sums the Wasserstein integral with vecdot (numpy >= 2).
_vecdot = getattr(np, "vecdot", np.dot)

Data = ColumnValues | np.ndarray | Any
TestFunc = Callable[[Data, Data, ColumnType | str, float], tuple[float, bool]]


# -- p-value tests -------------------------------------------------------------


def ks(reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.05):
    """Two-sample Kolmogorov-Smirnov p-value (scipy ``ks_2samp``)."""
    from scipy.stats import ks_2samp

    ref, cur = as_values(reference), as_values(current)
    p_value = float(ks_2samp(ref.require_values(), cur.require_values())[1])
    return p_value, p_value <= threshold


def chisquare(
    reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.05
):
    """Chi-square goodness of fit of current counts to rescaled reference counts.

    A category absent from the reference has an expected count of 0, which
    makes the statistic infinite and the p-value 0, as in Evidently.
    """
    from scipy.stats import chisquare as scipy_chisquare

    _, ref_counts, cur_counts = aligned_counts(as_values(reference), as_values(current))
    f_exp = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = float(scipy_chisquare(cur_counts, f_exp)[1])
    return p_value, p_value < threshold


def z(reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.05):
    """Two-proportion Z-test for binary columns (the smallest value is "0")."""
    from scipy.special import ndtr  # what scipy.stats.norm.cdf evaluates

    keys, ref_counts, cur_counts = aligned_counts(as_values(reference), as_values(current))
    ref_seen, cur_seen = ref_counts > 0, cur_counts > 0
    if ref_seen.sum() == 1 and cur_seen.sum() == 1 and np.array_equal(ref_seen, cur_seen):
        return 1.0, False
    first = keys.index(sorted(keys)[0])
    n1, n2 = float(ref_counts.sum()), float(cur_counts.sum())
    p1 = float(n1 - ref_counts[first]) / n1
    p2 = float(n2 - cur_counts[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_stat = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        # Evidently's form: 2 * (1 - cdf), not the more precise sf.
        p_value = float(2 * (1 - ndtr(np.abs(z_stat))))
    return p_value, p_value < threshold


# -- distances -----------------------------------------------------------------


def wasserstein_distance_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """``scipy.stats.wasserstein_distance(u, v)`` for already sorted float arrays.

    scipy sorts both samples, then merge-sorts their union and binary-searches
    each side in it. With sorted inputs the union is two sorted runs, which a
    stable sort merges in linear time, and a running count replaces the
    searches. Where equal values make the counts differ from scipy's, the gap
    to the next value is 0, so every product summed is the same and so is the
    result, bit for bit.
    """
    n, m = u.size, v.size
    both = np.concatenate((u, v))
    order = np.argsort(both, kind="stable")
    deltas = np.diff(both[order])
    del both  # at 1M rows each temporary is ~8 MB: free them as soon as possible
    u_counts = np.cumsum(order < n)[:-1]
    del order
    gap = u_counts / n
    gap -= (np.arange(1, n + m) - u_counts) / m
    return float(_vecdot(np.abs(gap, out=gap), deltas))


def wasserstein(
    reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.1
):
    """Wasserstein-1 distance divided by the reference std (floored at 0.001)."""
    ref, cur = as_values(reference), as_values(current)
    norm = max(float(np.std(ref.require_values())), 0.001)
    value = wasserstein_distance_sorted(ref.sorted_values(), cur.sorted_values()) / norm
    return value, value >= threshold


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """``scipy.spatial.distance.jensenshannon(p, q)``, same steps, lighter import."""
    from scipy.special import rel_entr

    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))
    return float(np.sqrt(js / 2.0))


def jensenshannon(
    reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.1
):
    """Jensen-Shannon distance (natural log) between binned shares."""
    ref, cur = binned_shares(
        as_values(reference), as_values(current), ColumnType(column_type), fill=False
    )
    value = _js_distance(ref, cur)
    return value, value >= threshold


def psi(reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.1):
    """Population Stability Index over binned shares (zeros filled)."""
    ref, cur = binned_shares(
        as_values(reference), as_values(current), ColumnType(column_type), fill=True
    )
    value = float(np.sum((ref - cur) * np.log(ref / cur)))
    return value, value >= threshold


def kl_div(reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.1):
    """Kullback-Leibler divergence KL(reference || current) over binned shares."""
    from scipy.stats import entropy

    ref, cur = binned_shares(
        as_values(reference), as_values(current), ColumnType(column_type), fill=True
    )
    value = float(entropy(ref, cur))
    return value, value >= threshold


def hellinger(
    reference: Data, current: Data, column_type: ColumnType | str, threshold: float = 0.1
):
    """Hellinger distance; numerical columns use Sturges bins over distinct values.

    As in Evidently, the numerical bins span the union of both sides' distinct
    values and their number follows the count of those distinct values.
    """
    ref, cur = as_values(reference), as_values(current)
    if ColumnType(column_type) is ColumnType.CATEGORICAL:
        _, ref_counts, cur_counts = aligned_counts(ref, cur)
        ref_shares = ref_counts / ref_counts.sum()
        cur_shares = cur_counts / cur_counts.sum()
        overlap = float(np.sum(np.sqrt(ref_shares * cur_shares)))
    else:
        keys = np.union1d(ref.distinct(), cur.distinct())
        integer = ref.integer and cur.integer
        bins = sturges_edges(keys.min(), keys.max(), keys.size, integer=integer)
        h1 = np.histogram(ref.require_values(), bins=bins, density=True)[0]
        h2 = np.histogram(cur.require_values(), bins=bins, density=True)[0]
        width = (bins.max() - bins.min()) / (len(bins) - 1)
        overlap = float(np.sum(np.sqrt(h1 * h2) * width))
    value = math.sqrt(1 - float(np.clip(overlap, 0, 1)))
    return value, value >= threshold


# -- registry ------------------------------------------------------------------

BOTH = (ColumnType.NUMERICAL, ColumnType.CATEGORICAL)


@dataclass(frozen=True)
class StatTest:
    """A named drift test: its function, default threshold and allowed types."""

    name: str
    display_name: str
    func: TestFunc
    default_threshold: float
    column_types: tuple[ColumnType, ...]
    is_pvalue: bool

    def __call__(
        self,
        reference: Data,
        current: Data,
        column_type: ColumnType | str,
        threshold: float | None = None,
    ) -> tuple[float, bool]:
        limit = self.default_threshold if threshold is None else threshold
        score, drifted = self.func(reference, current, column_type, limit)
        return float(score), bool(drifted)

    def drifted(self, score: float, threshold: float) -> bool:
        """Re-judge a (for example FDR-adjusted) score with this test's comparison."""
        if self.name == "ks":
            return score <= threshold
        if self.is_pvalue:
            return score < threshold
        return score >= threshold


STATTESTS: dict[str, StatTest] = {
    t.name: t
    for t in (
        StatTest("ks", "K-S p_value", ks, 0.05, (ColumnType.NUMERICAL,), True),
        StatTest(
            "chisquare", "chi-square p_value", chisquare, 0.05, (ColumnType.CATEGORICAL,), True
        ),
        StatTest("z", "Z-test p_value", z, 0.05, (ColumnType.CATEGORICAL,), True),
        StatTest(
            "wasserstein",
            "Wasserstein distance (normed)",
            wasserstein,
            0.1,
            (ColumnType.NUMERICAL,),
            False,
        ),
        StatTest("jensenshannon", "Jensen-Shannon distance", jensenshannon, 0.1, BOTH, False),
        StatTest("psi", "PSI", psi, 0.1, BOTH, False),
        StatTest("kl_div", "Kullback-Leibler divergence", kl_div, 0.1, BOTH, False),
        StatTest("hellinger", "Hellinger distance", hellinger, 0.1, BOTH, False),
    )
}


def get_stattest(
    name: str, column_type: ColumnType | None = None, *, column: str | None = None
) -> StatTest:
    """Look a test up by name, checking it applies to ``column_type``.

    >>> get_stattest("psi").default_threshold
    0.1
    """
    test = STATTESTS.get(name)
    if test is None:
        raise InvalidInputError(f"Unknown drift test {name!r}; choose one of {sorted(STATTESTS)}.")
    if column_type is not None and column_type not in test.column_types:
        where = f" for column '{column}'" if column else ""
        allowed = [t.value for t in test.column_types]
        fitting = sorted(n for n, t in STATTESTS.items() if column_type in t.column_types)
        raise InvalidInputError(
            f"Drift test {name!r} does not apply to {column_type.value} columns{where}: it takes "
            f"{allowed} columns. Use one of {fitting}."
        )
    return test


def default_stattest(column_type: ColumnType, n_reference: int, n_unique: int) -> StatTest:
    """Evidently's automatic choice (``_get_default_stattest``).

    ``n_reference`` is the number of reference values left after dropping NaN
    and +-inf; ``n_unique`` the number of distinct values over reference *and*
    current together.

        >>> default_stattest(ColumnType.NUMERICAL, 1000, 6).name
        'ks'
        >>> default_stattest(ColumnType.NUMERICAL, 1001, 6).name
        'wasserstein'
    """
    if n_reference <= 1000:
        if column_type is ColumnType.NUMERICAL and n_unique > 5:
            return STATTESTS["ks"]
        return STATTESTS["chisquare"] if n_unique > 2 else STATTESTS["z"]
    if column_type is ColumnType.NUMERICAL and n_unique > 5:
        return STATTESTS["wasserstein"]
    return STATTESTS["jensenshannon"]
