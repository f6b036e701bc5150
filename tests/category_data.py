"""Real data with pandas ``category`` columns, and boosters that split on them.

Breast-cancer measurements with two of them binned into named bands: the radius
into eight bands whose categories are deliberately *not* in sorted order (a code
is a position in that order, so a sort anywhere would change every answer), the
concave points into three. A few numeric columns stay numeric. The bands carry
most of the signal, so LightGBM (many-vs-many category splits) and XGBoost
(one-hot and partition splits) really split on them; :func:`category_splits`
checks that they do.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

RADIUS_BANDS = ["r5", "r1", "r7", "r3", "r8", "r2", "r6", "r4"]  # not sorted, on purpose
CONCAVITY_BANDS = ["low", "mid", "high"]
NUMERIC = ["mean_texture", "mean_smoothness", "mean_symmetry"]
CATEGORICAL = ["radius_band", "concavity_band"]


def banded_cancer() -> tuple[pd.DataFrame, pd.Series]:
    """The frame (3 numeric + 2 category columns) and the 0/1 target."""
    data = load_breast_cancer(as_frame=True)
    raw = data.data
    frame = pd.DataFrame(
        {
            "mean_texture": raw["mean texture"],
            "mean_smoothness": raw["mean smoothness"],
            "mean_symmetry": raw["mean symmetry"],
            # pd.qcut orders bins by value; name them so that category order != sort order
            "radius_band": pd.Categorical(
                pd.qcut(raw["mean radius"], 8, labels=False).map(
                    lambda i: f"r{[5, 1, 7, 3, 8, 2, 6, 4][i]}"
                ),
                categories=RADIUS_BANDS,
            ),
            "concavity_band": pd.Categorical(
                pd.qcut(raw["mean concave points"], 3, labels=CONCAVITY_BANDS).astype(str),
                categories=CONCAVITY_BANDS,
            ),
        }
    )
    return frame, data.target.rename("malignant")


def lightgbm_model(X: pd.DataFrame, y: pd.Series) -> Any:
    import lightgbm

    return lightgbm.LGBMClassifier(
        n_estimators=40, min_data_per_group=5, cat_smooth=1.0, verbose=-1, random_state=0
    ).fit(X, y)


def xgboost_model(X: pd.DataFrame, y: pd.Series) -> Any:
    import xgboost

    return xgboost.XGBClassifier(
        n_estimators=40, max_depth=4, enable_categorical=True, max_cat_to_onehot=4
    ).fit(X, y)


def category_splits(model: Any) -> set[str]:
    """The category columns the fitted booster actually splits on as categories."""
    if type(model).__module__.startswith("lightgbm"):
        booster = model.booster_
        names = booster.feature_name()
        found: set[str] = set()

        def walk(node: dict[str, Any]) -> None:
            if "decision_type" in node:
                if node["decision_type"] == "==":
                    found.add(names[node["split_feature"]])
                walk(node["left_child"])
                walk(node["right_child"])

        for tree in booster.dump_model()["tree_info"]:
            walk(tree["tree_structure"])
        return found
    found = set()
    for tree in model.get_booster().get_dump(dump_format="json"):
        stack = [json.loads(tree)]
        while stack:
            node = stack.pop()
            if isinstance(node.get("split_condition"), list):  # a set of category codes
                found.add(node["split"])
            stack.extend(node.get("children", []))
    return found


def records(X: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: category values as plain strings."""
    plain = X.astype({c: object for c in CATEGORICAL})
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in plain.to_dict("records")
    ]
