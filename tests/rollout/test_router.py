"""Router: weights are honoured (chi-square at a fixed seed) and sticky keys never move."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from scipy.stats import chisquare

from shipyard.errors import InvalidInputError
from shipyard.rollout.records import Variant
from shipyard.rollout.router import Router, stable_point

VARIANTS = [Variant("primary", 1, 70.0), Variant("ab:2", 2, 20.0), Variant("ab:3", 3, 10.0)]


def test_random_assignment_matches_weights() -> None:
    router = Router(VARIANTS, salt="web", rng=random.Random(7).random)
    n = 20_000
    seen = Counter(router.pick().name for _ in range(n))
    observed = [seen[v.name] for v in VARIANTS]
    expected = [n * v.weight / 100 for v in VARIANTS]
    assert chisquare(observed, expected).pvalue > 0.01, observed


def test_sticky_assignment_is_stable_and_matches_weights() -> None:
    router = Router(VARIANTS, salt="web", rng=random.Random(1).random)
    again = Router(VARIANTS, salt="web", rng=random.Random(2).random)  # another worker
    users = [f"user-{i}" for i in range(20_000)]
    first = {u: router.pick(u).name for u in users}
    assert all(again.pick(u).name == first[u] for u in users)
    seen = Counter(first.values())
    observed = [seen[v.name] for v in VARIANTS]
    expected = [len(users) * v.weight / 100 for v in VARIANTS]
    assert chisquare(observed, expected).pvalue > 0.01, observed


def test_growing_a_canary_only_moves_users_into_it() -> None:
    small = Router([Variant("primary", 1, 90.0), Variant("canary", 2, 10.0)], salt="web")
    large = Router([Variant("primary", 1, 50.0), Variant("canary", 2, 50.0)], salt="web")
    users = [f"u{i}" for i in range(5_000)]
    for u in users:
        if small.pick(u).name == "canary":
            assert large.pick(u).name == "canary"


def test_salt_separates_deployments_and_points_are_in_range() -> None:
    points = [stable_point(f"u{i}", "a") for i in range(1000)]
    assert all(0 <= p < 100 for p in points)
    assert points != [stable_point(f"u{i}", "b") for i in range(1000)]


def test_single_variant_and_no_weight() -> None:
    assert Router([Variant("primary", 1, 100.0)], salt="w").pick("x").version == 1
    with pytest.raises(InvalidInputError, match="at least one variant"):
        Router([Variant("primary", 1, 0.0)], salt="w")
