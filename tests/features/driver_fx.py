"""An on-demand feature function for the tests: conversion rate per kilometre of the trip."""

from __future__ import annotations

import pandas as pd


def conv_per_km(frame: pd.DataFrame) -> pd.DataFrame:
    """``conv_rate / trip_distance``, computed the same way offline and online."""
    distance = frame["trip_distance"].astype("float64")
    return pd.DataFrame({"conv_per_km": frame["conv_rate"].astype("float64") / distance})


ON_DEMAND_YAML = """
on_demand_feature_views:
  - name: trip_features
    function: driver_fx:conv_per_km
    inputs: [driver_stats:conv_rate]
    request_fields:
      - {name: trip_distance, dtype: float64}
    features:
      - {name: conv_per_km, dtype: float64}
"""
