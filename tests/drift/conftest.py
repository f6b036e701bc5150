"""Frames shared by the drift tests: edge cases Evidently's rules hinge on."""

from __future__ import annotations

import pandas as pd
import pytest
from drift_frames import edge_frame


@pytest.fixture(scope="session")
def edge_1000() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference of exactly 1000 rows: Evidently's small-data tests (KS, chi-square, Z)."""
    return edge_frame(1000, drift=False, seed=1), edge_frame(800, drift=True, seed=11)


@pytest.fixture(scope="session")
def edge_1001() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference of 1001 rows: Wasserstein / Jensen-Shannon (unless NaN leaves <= 1000)."""
    return edge_frame(1001, drift=False, seed=2), edge_frame(900, drift=True, seed=12)
