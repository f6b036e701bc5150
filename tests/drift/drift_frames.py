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
    return pd.DataFrame(
        {
            "u2": rng.choice([0.0, 1.0], n, p=[0.5 + s / 2, 0.5 - s / 2]),
            "u5": rng.choice([0.0, 1.5, 2.0, 3.0, 4.0], n),
            "u6": rng.choice(np.arange(6.0), n) + drift * (rng.random(n) < 0.2),
            "u20": rng.choice(np.arange(20.0), n),
            "u21": rng.choice(np.arange(21.0), n),
            "i21": rng.integers(0, 21, n),
            "i3": rng.integers(0, 3, n),
            "normal": rng.normal(s, 1, n),
            "nan_inf": nan_inf,
            "const": np.full(n, 3.0),
            "cat_unseen": rng.choice(cats, n),
            "cat2": rng.choice(["yes", "no"], n),
            "flag": rng.random(n) < (0.3 if drift else 0.5),
            "cat_nan": pd.Series(rng.choice(["p", "q", "r", None], n), dtype=object),
        }
    )
