"""Failed requests over time, for the monitoring page, from the deployments' counters.

The prediction log holds only answered requests, so failures are not in it.
What records them is each serving worker: per deployment, variant and traffic
epoch (the span between two changes of the traffic split) it counts requests
and errors, an error being an answer with a 5xx status (the server failed; a
4xx is the client's bad input and is not counted). Those counters are
cumulative per epoch, so the finest honest time grain is one epoch: each
epoch is drawn as a flat segment from its start to the last report of its
counters, at its share of failed requests. Requests served outside a
deployment (batch scoring, a bare ``shipyard serve``) have no error count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from shipyard.store.rollout_records import EpochCounts
from shipyard.ui.charts import Series

if TYPE_CHECKING:
    from shipyard._client import Shipyard

__all__ = ["ERROR_MEANING", "ErrorEpoch", "error_epochs", "error_series"]

#: What the page says counts as an error.
ERROR_MEANING = (
    "An error is a prediction request a deployment's server answered with a 5xx status "
    "(a 4xx for bad input is the client's mistake and is not counted). Servers count them "
    "per traffic epoch (from one change of the deployment's split to the next), not per "
    "minute, so each segment covers one epoch; the prediction log holds answered requests "
    "only, and batch scoring has no error count."
)


@dataclass(frozen=True)
class ErrorEpoch:
    """One deployment's requests and errors over one epoch (all its variants)."""

    deployment: str
    epoch: int
    start: datetime
    end: datetime
    requests: int
    errors: int
    #: variant -> (version, requests, errors)
    variants: dict[str, tuple[int, int, int]]

    @property
    def error_share(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def error_epochs(
    client: Shipyard,
    model: str,
    since: datetime,
    until: datetime,
    *,
    deployment: str | None = None,
    version: int | None = None,
) -> list[ErrorEpoch]:
    """The epochs of ``model``'s deployments (or one of them) that overlap the window."""
    names = (
        [deployment] if deployment else [d.name for d in client.deployments.list_deployments(model)]
    )
    out: list[ErrorEpoch] = []
    for name in names:
        grouped: dict[int, list[EpochCounts]] = {}
        for c in client.rollouts.epoch_counts(name):
            if version is not None and c.version != version:
                continue
            grouped.setdefault(c.epoch, []).append(c)
        for epoch, counts in sorted(grouped.items()):
            start = min(c.started_at or c.reported_at for c in counts)
            end = max(c.reported_at for c in counts)
            if end < since or start >= until:
                continue
            variants = {c.variant: (c.version, c.requests, c.errors) for c in counts}
            out.append(
                ErrorEpoch(
                    name,
                    epoch,
                    start,
                    end,
                    sum(v[1] for v in variants.values()),
                    sum(v[2] for v in variants.values()),
                    variants,
                )
            )
    return out


def error_series(epochs: list[ErrorEpoch], since: datetime, until: datetime) -> list[Series]:
    """One line per deployment: each epoch a flat segment at its share of failed requests,
    clipped to the window, with a gap between epochs."""
    lines: dict[str, list[tuple[float, float | None]]] = {}
    lo, hi = since.timestamp(), until.timestamp()
    for e in epochs:
        points = lines.setdefault(e.deployment, [])
        if points:
            points.append(((points[-1][0] + max(lo, e.start.timestamp())) / 2, None))
        share = e.error_share
        points.append((max(lo, e.start.timestamp()), share))
        points.append((min(hi, max(e.end.timestamp(), e.start.timestamp())), share))
    return [Series(f"{name} errors", points) for name, points in lines.items()]
