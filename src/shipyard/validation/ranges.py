"""How far new data may reach: ranges from the tails of the training data, and the tail test.

A held-out row of the very data a model was trained on lands past the
training extremes more often than intuition says: of ``n`` training values and
``m`` new ones from the same source, the largest of all is a new one with
probability ``m / (n + m)`` (30 % for a 70/30 split). So an inferred range
cannot stop at the observed extremes; it has to extrapolate the tails, by an
amount the data itself says.

**Expected range** (a *soft* expectation: outside it, a value is unusual, not
wrong). Each side is extrapolated with the peaks-over-threshold method of
extreme-value theory: the ``k = sqrt(n)`` most extreme values past the
threshold ``u`` (the next one in) are fitted with an exponential tail, whose
scale is their mean excess ``s``; the bound is where that tail leaves a
probability ``p`` per value (``DEFAULT_RANGE_PROBABILITY``, one in 100,000)::

    bound = u + s * ln(k / (n * p))

Values recorded on a grid (0.1, 0.2, ...) often tie at the extremes, which
makes ``s`` zero; ``s`` is then taken as one step of the grid.

A side whose values all have one sign (a size, a count, a price) is also
fitted on a log scale, which is the same fit for a power-law tail (Hill's
estimator), and the wider bound is kept. The bound is never inside the
observed values. Few rows make ``s`` large and the range wide; many rows make
it tight, so the tolerance follows the sample size.

**Sign bound** (a *hard* expectation): a column that was never negative in at
least ``MIN_ROWS_FOR_SIGN`` values gets ``lower_bound = 0``; a negative length
is impossible, not unusual. Likewise ``upper_bound = 0`` for a column that was
never positive.

**Tail test** (soft): p01 and p99 are observed values, about the
``n / 100``-th smallest and largest of the ``n`` profiled rows, so a new value
from the same source falls outside them with probability about
``2 (n / 100 + 1) / (n + 1)``, 2 to 3 %. The count of a batch's ``m`` values
outside them then follows a beta-binomial law (that probability is itself
estimated from ``n`` rows). A batch breaks the tail expectation when its
share outside exceeds ``max_tail_fraction`` *and* the count would happen by
chance less than ``TAIL_TEST_ALPHA`` of the time.

Example:
    >>> import numpy as np
    >>> lo, hi = expected_range(np.arange(1.0, 101.0), probability=1e-5, integer=False)
    >>> lo < 1.0 and hi > 100.0
    True
"""

from __future__ import annotations

import math

import numpy as np

#: Chance per value, under the fitted tail, of falling past one side of the expected range.
DEFAULT_RANGE_PROBABILITY = 1e-5
#: Fewer values and no sign bound is inferred: a handful of positives proves little.
MIN_ROWS_FOR_SIGN = 20
#: Share of the data outside p01..p99, for contracts that do not say how many rows they saw.
TAIL_SHARE = 0.02
#: A tail share this unlikely under the training distribution is not chance.
TAIL_TEST_ALPHA = 1e-3


def expected_range(values: np.ndarray, *, probability: float, integer: bool) -> tuple[float, float]:
    """(low, high) for finite ``values`` (at least one), each side's tail extrapolated.

    Integer columns get whole-number bounds (floor and ceiling).
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if len(ordered) < 2:
        return float(ordered[0]), float(ordered[-1])
    high = _reach(ordered, probability)
    low = -_reach(-ordered[::-1], probability)
    # A column of one sign keeps it: the soft range does not cross zero.
    if ordered[0] >= 0:
        low = max(low, 0.0)
    if ordered[-1] <= 0:
        high = min(high, 0.0)
    if integer:
        return float(math.floor(low)), float(math.ceil(high))
    return float(low), float(high)


def _reach(ordered: np.ndarray, probability: float) -> float:
    """The upper bound of ascending ``ordered``: exponential tail fit, and log scale if positive."""
    bound = _tail_fit(ordered, probability, _resolution(ordered))
    if ordered[0] >= 0:
        positive = ordered[ordered > 0]
        if len(positive) >= 2:
            logs = np.log(positive)
            bound = max(bound, math.exp(_tail_fit(logs, probability, _resolution(logs))))
    return max(bound, float(ordered[-1]))


def _resolution(ordered: np.ndarray) -> float:
    """The smallest step between distinct values: what a value recorded as 0.2 may hide."""
    steps = np.diff(np.unique(ordered))
    return float(steps.min()) if len(steps) else 0.0


def _tail_fit(ordered: np.ndarray, probability: float, resolution: float) -> float:
    n = len(ordered)
    k = max(1, min(n - 1, round(math.sqrt(n))))
    threshold = float(ordered[n - k - 1])
    # Tied extremes (values on a grid: 0.1, 0.2, ...) give a mean excess of 0, which says
    # only that the tail is shorter than one step of the grid: take it as one step.
    scale = max(float(np.mean(ordered[n - k :] - threshold)), resolution)
    # k/n of the data lies past the threshold; the tail leaves `probability` at this distance.
    return threshold + scale * math.log(k / (n * probability))


def sign_bounds(values: np.ndarray) -> tuple[float | None, float | None]:
    """(0, None) for a column never negative, (None, 0) for one never positive, else (None, None).

    Only from ``MIN_ROWS_FOR_SIGN`` values up.
    """
    if len(values) < MIN_ROWS_FOR_SIGN:
        return None, None
    if float(np.min(values)) >= 0:
        return 0.0, None
    if float(np.max(values)) <= 0:
        return None, 0.0
    return None, None


def tail_count_is_chance(outside: int, batch: int, rows_profiled: int) -> bool:
    """Whether ``outside`` of ``batch`` values past p01..p99 is plausible for the training data.

    ``rows_profiled`` is how many rows the quantiles came from (0 if unknown:
    the 2 % is then taken as exact, a plain binomial).
    """
    from scipy import stats  # only batch checks of 50+ rows come here

    if outside == 0:
        return True
    if rows_profiled > 0:
        n = rows_profiled
        # Inverted-CDF quantiles: p01 is the ceil(n/100)-th smallest value, p99 the
        # ceil(99n/100)-th. A new value falls below the i-th smallest of n with probability
        # i / (n + 1), above the j-th with (n + 1 - j) / (n + 1); integer maths, no rounding.
        below = -(-n // 100)
        above = n + 1 - -(-99 * n // 100)
        p_value = float(
            stats.betabinom.sf(outside - 1, batch, below + above, n + 1 - below - above)
        )
    else:
        p_value = float(stats.binom.sf(outside - 1, batch, TAIL_SHARE))
    return p_value >= TAIL_TEST_ALPHA


__all__ = [
    "DEFAULT_RANGE_PROBABILITY",
    "MIN_ROWS_FOR_SIGN",
    "TAIL_SHARE",
    "TAIL_TEST_ALPHA",
    "expected_range",
    "sign_bounds",
    "tail_count_is_chance",
]
