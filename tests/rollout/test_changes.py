"""apply_deploy: the create / split / canary / shadow decision behind ``shipyard deploy``."""

from __future__ import annotations

import pytest
from rollout_support import Registry

from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.rollout.changes import (
    DEFAULT_STEP_SECONDS,
    DeployRequest,
    apply_deploy,
    followed_alias,
)


def _apply(reg: Registry, name: str, **request: object) -> object:
    return apply_deploy(
        reg.deployments, reg.client.registry.resolve, name, DeployRequest(**request)
    )


def test_create_then_canary_split_shadows_and_switch(sqlite_reg: Registry) -> None:
    with pytest.raises(NotFoundError, match="No deployment named 'web'"):
        _apply(sqlite_reg, "web")
    with pytest.raises(InvalidInputError, match="does not exist yet"):
        _apply(sqlite_reg, "web", model="m:1", canary=10)
    d = _apply(sqlite_reg, "web", model="m:1")
    assert (d.model, d.primary, d.canary) == ("m", 1, None)
    d = _apply(sqlite_reg, "web", model="m:2", canary=10)
    assert d.canary == 2 and d.policy is None
    sqlite_reg.deployments.abort_canary("web", reason="test")
    d = _apply(sqlite_reg, "web", split={1: 50, 2: 50}, sticky_header="X-User")
    assert d.mode == "ab"
    d = _apply(sqlite_reg, "web", model="m:3", shadows=("m:4",))
    assert (d.primary, d.shadows) == (3, (4,))
    d = _apply(sqlite_reg, "web", no_shadows=True)
    assert d.shadows == ()


def test_steps_without_a_step_condition_get_the_default_step_length(
    sqlite_reg: Registry,
) -> None:
    _apply(sqlite_reg, "web", model="m:1")
    d = _apply(sqlite_reg, "web", model="m:2", steps=(5, 50, 100), max_p99_seconds=0.2)
    assert d.policy is not None
    assert (d.policy.step_seconds, d.policy.step_requests) == (DEFAULT_STEP_SECONDS, None)
    assert d.policy.max_p99_seconds == 0.2
    # A request count alone means no time limit.
    d = _apply(sqlite_reg, "web", model="m:3", steps=(5, 100), step_requests=50)
    assert d.policy is not None and (d.policy.step_seconds, d.policy.step_requests) == (None, 50)


def test_bad_requests_change_nothing(sqlite_reg: Registry) -> None:
    _apply(sqlite_reg, "web", model="m:1")
    with pytest.raises(InvalidInputError, match="--canary or --steps, not both"):
        _apply(sqlite_reg, "web", model="m:2", canary=5, steps=(5, 100))
    with pytest.raises(InvalidInputError, match=r"policy\.steps must be increasing"):
        _apply(sqlite_reg, "web", model="m:2", steps=(50, 5))
    assert sqlite_reg.deployments.get("web").revision == 1


def test_a_deployment_follows_the_alias_it_was_created_from() -> None:
    assert followed_alias("iris") == "production"
    assert followed_alias("iris@staging") == "staging"
    assert followed_alias("iris:3") is None
