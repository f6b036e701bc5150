"""Pick the variant that answers a request: weighted random, or sticky by a request key.

Sticky assignment hashes the key with the deployment's name (SHA-256, stable
across processes and Python versions, unlike ``hash()``) to a point in
[0, 100) and walks the cumulative weights, so the same user id gets the same
variant on every worker for as long as the weights stay put; when a weight
grows, only the users in the grown slice move.

Example:
    >>> from shipyard.rollout.records import Variant
    >>> router = Router([Variant("primary", 3, 90.0), Variant("canary", 4, 10.0)], salt="web")
    >>> router.pick(key="user-42").name == router.pick(key="user-42").name
    True
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Sequence

from shipyard.errors import InvalidInputError
from shipyard.rollout.records import Variant


def stable_point(key: str, salt: str) -> float:
    """A number in [0, 100) that depends only on ``salt`` and ``key``.

    >>> stable_point("user-1", "web") == stable_point("user-1", "web")
    True
    """
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


class Router:
    """Routes requests among ``variants`` by their weights (in %).

    ``rng`` returns floats in [0, 1) (inject a seeded one in tests); ``salt``
    (the deployment name) keeps assignments independent across deployments.
    """

    def __init__(
        self,
        variants: Sequence[Variant],
        *,
        salt: str,
        rng: Callable[[], float] | None = None,
    ) -> None:
        live = [v for v in variants if v.weight > 0]
        if not live:
            raise InvalidInputError("A router needs at least one variant with a weight above 0.")
        total = sum(v.weight for v in live)
        self.variants = tuple(live)
        self.salt = salt
        self._rng = rng if rng is not None else random.Random().random
        bounds, running = [], 0.0
        for v in live:
            running += v.weight / total * 100.0
            bounds.append(running)
        bounds[-1] = 100.0  # rounding must never leave a gap at the top
        self._bounds = bounds

    def _at(self, point: float) -> Variant:
        index = bisect.bisect_right(self._bounds, point)
        return self.variants[min(index, len(self.variants) - 1)]

    def pick(self, key: str | None = None) -> Variant:
        """The variant for a request; the same ``key`` always gets the same one."""
        if len(self.variants) == 1:
            return self.variants[0]
        point = stable_point(key, self.salt) if key else self._rng() * 100.0
        return self._at(point)


__all__ = ["Router", "stable_point"]
