"""Which prediction-log rows belong to a deployment's current configuration.

The log holds every prediction of a model: this deployment's, another
deployment's of the same model, and direct traffic (``shipyard serve MODEL``).
A server serving a deployment stamps its name on each row (``deployment``);
a row belongs to deployment ``d`` when it carries ``d``'s name *and* its
(variant, version) is one ``d`` routes to now (an answering variant at its
current version), or it is a shadow's copy (``shadow:<v>`` names its
version, so it cannot be mistaken). So a canary's rows from before it moved
to another version, or rows a same-named variant of another deployment
answered, never count. Reports, the accuracy guard and the shadow comparison
all read through :func:`deployment_rows`.

Example:
    >>> import pandas as pd
    >>> from shipyard.rollout.records import Deployment
    >>> d = Deployment("web", "m", 1, canary=2, canary_weight=10.0)
    >>> rows = pd.DataFrame({"deployment": ["web", "web", "api", None],
    ...                      "variant": ["primary", "canary", "primary", "primary"],
    ...                      "version": [1, 2, 1, 1]})
    >>> deployment_rows(d, rows).index.tolist()
    [0, 1]
"""

from __future__ import annotations

import pandas as pd

from shipyard.rollout.records import SHADOW_PREFIX, Deployment


def deployment_rows(d: Deployment, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rows`` that ``d`` answered (or shadowed) as it is configured now.

    Rows without a ``deployment`` column (logged by a server that served no
    deployment, or before servers stamped it) belong to no deployment.
    """
    if rows.empty or "deployment" not in rows.columns:
        return rows.iloc[0:0]
    routed = {(v.name, v.version) for v in d.variants()}
    mine = rows["deployment"].astype("string") == d.name
    variants = rows["variant"].astype(str)
    versions = pd.to_numeric(rows["version"], errors="coerce")
    pairs = pd.Series(list(zip(variants, versions, strict=True)), index=rows.index)
    shadow_copy = variants == SHADOW_PREFIX + versions.astype("Int64").astype(str)
    keep = pairs.isin(routed) | shadow_copy.fillna(False)
    return rows[mine.fillna(False).to_numpy(dtype=bool) & keep.to_numpy(dtype=bool)]


__all__ = ["deployment_rows"]
