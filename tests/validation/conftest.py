"""Frames and real packaged models shared by the validation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.registry.model import LoadedModel
from shipyard.registry.package import read_package, write_package


def adult_like(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Census-style columns: integers, floats with gaps, strings with gaps, bools, dates."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(17, 91, n),
            "hours_per_week": rng.normal(40.0, 10.0, n).round(1),
            "workclass": rng.choice(["Private", "Self-emp", "Gov"], n),
            "capital_gain": rng.exponential(1000.0, n),
            "married": rng.random(n) > 0.5,
            "seen": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )
    frame.loc[::17, "hours_per_week"] = np.nan
    frame.loc[::23, "workclass"] = None
    return frame


def package(model: Any, sample: pd.DataFrame, tmp_path: Path, name: str = "m") -> LoadedModel:
    """Package ``model`` for real and load it back, as the registry would."""
    folder = tmp_path / f"pkg-{name}"
    write_package(model, folder, name=name, version=1, sample=sample)
    manifest, predictor = read_package(folder)
    return LoadedModel(manifest, predictor)


@pytest.fixture
def adult() -> pd.DataFrame:
    return adult_like()


@pytest.fixture(scope="session")
def packager():  # type: ignore[no-untyped-def]
    """The :func:`package` helper, for test modules (tests folders are not packages)."""
    return package
