"""deployment_rows: a deployment's own rows, per variant and version, shadows included."""

from __future__ import annotations

import pandas as pd

from shipyard.rollout.log_rows import deployment_rows
from shipyard.rollout.records import Deployment


def test_only_this_deployment_and_the_versions_it_routes_to_now() -> None:
    d = Deployment("web", "m", 1, canary=3, canary_weight=20.0, shadows=(5,))
    rows = pd.DataFrame(
        {
            "deployment": ["web", "web", "web", "web", "api", None, "web", "web", "api"],
            "variant": [
                "primary", "canary", "canary", "shadow:5", "canary", "primary", "ab:2",
                "shadow:4", "shadow:5",
            ],
            "version": [1, 3, 2, 5, 3, 1, 2, 4, 5],
        }
    )  # fmt: skip
    # Kept: web's primary at 1, canary at 3, its shadow copies (a shadow's variant names
    # its version, even one since removed). Dropped: web's canary at its old version 2,
    # api's rows, direct traffic, and a variant web no longer has.
    assert deployment_rows(d, rows).index.tolist() == [0, 1, 3, 7]


def test_rows_logged_without_a_deployment_belong_to_none() -> None:
    d = Deployment("web", "m", 1)
    direct = pd.DataFrame({"variant": ["primary"], "version": [1]})
    assert deployment_rows(d, direct).empty
    assert deployment_rows(d, direct.iloc[0:0].assign(deployment=[])).empty
