"""Feature references: ``view:feature``, as Feast writes them.

>>> [str(r) for r in parse_refs("driver_stats:conv_rate, driver_stats:avg_daily_trips")]
['driver_stats:conv_rate', 'driver_stats:avg_daily_trips']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shipyard.errors import InvalidInputError


@dataclass(frozen=True)
class FeatureRef:
    view: str
    feature: str

    def __str__(self) -> str:
        return f"{self.view}:{self.feature}"

    def column(self, *, full: bool) -> str:
        """The column this feature takes in a training set (``view__feature`` when ``full``)."""
        return f"{self.view}__{self.feature}" if full else self.feature


def parse_refs(refs: str | Iterable[str]) -> list[FeatureRef]:
    """``view:feature`` references from a comma-separated string or a list; no repeats."""
    items = refs.split(",") if isinstance(refs, str) else list(refs)
    parsed: list[FeatureRef] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidInputError(f"Feature reference {item!r} must be text: view:feature.")
        text = item.strip()
        view, sep, feature = text.partition(":")
        if not sep or not view or not feature or ":" in feature:
            raise InvalidInputError(
                f"Feature reference {text!r} must read view:feature, e.g. driver_stats:conv_rate."
            )
        ref = FeatureRef(view, feature)
        if ref in parsed:
            raise InvalidInputError(f"Feature reference {text!r} is listed twice.")
        parsed.append(ref)
    if not parsed:
        raise InvalidInputError("No feature references given: list view:feature, ...")
    return parsed


__all__ = ["FeatureRef", "parse_refs"]
