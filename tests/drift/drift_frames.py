"""Synthetic frames for the drift tests: the edge cases Evidently's rules hinge on."""

from __future__ import annotations

import numpy as np
import pandas as pd


def edge_frame(n: int, *, drift: bool, seed: int) -> pd.DataFrame:
    """Columns with 2/5/6/20/21 distinct values, NaN, +-inf, constants, unseen categories."""
    rng = np.random.default_rng(seed)
    s = 0.4 if drift else 0.0
    nan_inf = rng.normal(0, 1, n)
    nan_inf[rng.random(n) < 0.1] = np.nan
    nan_inf[:3] = np.inf
    nan_inf[3] = -np.inf
    cats = ["a", "b", "c", *(["zz"] if drift else [])]
    # The few-valued float columns hold halves: whole-number floats are typed like
    # integers (see shipyard.drift.columns), and these test Evidently's float rules.
    return pd.DataFrame(
        {
            "u2": rng.choice([0.5, 1.5], n, p=[0.5 + s / 2, 0.5 - s / 2]),
            "u5": rng.choice([0.5, 1.5, 2.5, 3.5, 4.5], n),
            "u6": rng.choice(np.arange(6.0) + 0.5, n) + drift * (rng.random(n) < 0.2),
            "u20": rng.choice(np.arange(20.0) + 0.5, n),
            "u21": rng.choice(np.arange(21.0) + 0.5, n),
            "i21": rng.integers(0, 21, n),
            "i3": rng.integers(0, 3, n),
            "normal": rng.normal(s, 1, n),
            "nan_inf": nan_inf,
            "const": np.full(n, 3.5),
            "cat_unseen": rng.choice(cats, n),
            "cat2": rng.choice(["yes", "no"], n),
            "flag": rng.random(n) < (0.3 if drift else 0.5),
            "cat_nan": pd.Series(rng.choice(["p", "q", "r", None], n), dtype=object),
        }
    )
