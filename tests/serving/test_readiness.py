"""OnlineStoreHealth: whether a feature-backed model's online store answers, cheaply enough
for probe traffic (real reads tell it; otherwise one shared ping, its answer kept a second)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from shipyard.features.online import OnlineStoreUnavailable
from shipyard.serving.errors import OnlineStoreNotReadyError
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.readiness import OnlineStoreHealth, Readiness

TARGET = "redis://cache-host:6379/1#shipyard"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Probe:
    """Counts pings; ``down`` makes them raise; ``gate`` holds a ping until it is opened."""

    def __init__(self, *, inline: bool = False) -> None:
        self._inline = inline
        self.pings = 0
        self.down = False
        self.gate: threading.Event | None = None
        self.error: Exception | None = None

    @property
    def inline(self) -> bool:
        return self._inline

    @property
    def target(self) -> str:
        return TARGET

    def ping(self) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.pings += 1
        if self.error is not None:
            raise self.error
        if self.down:
            raise OnlineStoreUnavailable(f"The online store {TARGET} cannot be reached: refused.")


@pytest.mark.parametrize("inline", [False, True])
def test_probes_arriving_together_share_one_ping_kept_for_max_age(inline: bool) -> None:
    probe, clock = Probe(inline=inline), Clock()
    health = OnlineStoreHealth(probe, clock=clock, max_age=1.0)

    async def probes(n: int) -> list[str | None]:
        return await asyncio.gather(*(health.problem() for _ in range(n)))

    assert asyncio.run(probes(50)) == [None] * 50
    assert probe.pings == 1
    clock.now += 0.9
    assert asyncio.run(probes(50)) == [None] * 50
    assert probe.pings == 1  # still fresh: no ping at all
    probe.down = True
    clock.now += 0.2
    problems = asyncio.run(probes(50))
    assert probe.pings == 2
    assert all(p is not None and "cannot be reached" in p and TARGET in p for p in problems)
    probe.down = False
    clock.now += 1.1
    assert asyncio.run(probes(3)) == [None] * 3 and probe.pings == 3


def test_probes_during_a_slow_ping_wait_for_it_instead_of_sending_more() -> None:
    probe, clock = Probe(), Clock()
    probe.gate = threading.Event()
    health = OnlineStoreHealth(probe, clock=clock)

    async def main() -> list[str | None]:
        waiting = [asyncio.ensure_future(health.problem()) for _ in range(20)]
        await asyncio.sleep(0.05)
        clock.now += 5  # the ping is slow: later probes still join it
        waiting += [asyncio.ensure_future(health.problem()) for _ in range(20)]
        await asyncio.sleep(0.05)
        probe.gate.set()  # type: ignore[union-attr]
        return await asyncio.gather(*waiting)

    assert asyncio.run(main()) == [None] * 40
    assert probe.pings == 1


def test_real_reads_answer_for_the_store_so_a_busy_server_is_never_pinged() -> None:
    probe, clock = Probe(), Clock()
    health = OnlineStoreHealth(probe, clock=clock)
    health.saw(None)
    for _ in range(10):
        clock.now += 0.5
        assert asyncio.run(health.problem()) is None
        health.saw(None)  # traffic keeps reading
    assert probe.pings == 0
    failed = OnlineStoreUnavailable(f"The online store {TARGET} cannot be reached: timeout.")
    health.saw(failed)
    assert asyncio.run(health.problem()) == str(failed)
    assert probe.pings == 0  # a read that just failed is the answer: no ping
    clock.now += 1.5  # no read since: the next probe pings (the store is back)
    assert asyncio.run(health.problem()) is None and probe.pings == 1


def test_on_change_is_told_only_when_the_answer_flips() -> None:
    probe, clock = Probe(), Clock()
    changes: list[tuple[str, bool]] = []
    health = OnlineStoreHealth(probe, clock=clock, on_change=lambda t, up: changes.append((t, up)))
    down = OnlineStoreUnavailable("down")
    for error in [None, None, down, down, down, None, None]:
        health.saw(error)
    assert changes == [(TARGET, True), (TARGET, False), (TARGET, True)]


def test_an_unexpected_ping_failure_is_a_problem_without_its_text() -> None:
    """A probe never answers 500, and an error's text (which may hold a URL with its
    password) is never shown: the message names the store by its safe name."""
    probe, clock = Probe(), Clock()
    probe.error = ValueError("redis://user:s3cret@cache-host:6379/1 is odd")
    problem = asyncio.run(OnlineStoreHealth(probe, clock=clock).problem())
    assert problem is not None and "s3cret" not in problem
    assert f"The online store {TARGET} could not be checked (ValueError)" in problem


class FakeRuntime:
    """The two things Readiness asks a runtime: the primary, and every version answering."""

    def __init__(self, *served: Any) -> None:
        self.served = list(served)

    def require_all_ready(self) -> Any:
        return self.served[0]

    def answering(self) -> list[Any]:
        return self.served


def _served(ref: str, features: dict[str, Any] | None) -> Any:
    return SimpleNamespace(
        ref=ref, model=SimpleNamespace(manifest=SimpleNamespace(features=features))
    )


def test_a_deployment_is_not_ready_when_any_variant_it_routes_to_needs_the_store() -> None:
    """A plain primary with a feature-backed canary: the canary's requests would all fail,
    so the replica is not ready; the error names the canary and the store."""
    probe, metrics = Probe(), ServingMetrics()
    probe.down = True
    primary, canary = _served("eta:1", None), _served("eta:2", {"refs": ["v:x"]})
    readiness = Readiness(FakeRuntime(primary, canary), metrics, OnlineStoreHealth(probe))  # type: ignore[arg-type]
    with pytest.raises(OnlineStoreNotReadyError) as refused:
        asyncio.run(readiness.require())
    assert "eta:2" in str(refused.value) and "eta:1" not in str(refused.value)
    assert refused.value.online_store == TARGET
    assert metrics.model_ready._value.get() == 0
    alone = Readiness(FakeRuntime(primary), metrics, OnlineStoreHealth(probe))  # type: ignore[arg-type]
    assert asyncio.run(alone.require()) is primary
    assert alone.online is not None and alone.online.pings == 0


def test_a_deployment_answers_with_its_routed_variants_not_its_shadows() -> None:
    from unittest.mock import MagicMock

    from shipyard.serving.deployment import DeploymentRuntime, Table

    runtime = DeploymentRuntime(
        MagicMock(), "web", rollout=MagicMock(), metrics=ServingMetrics(), poll_interval=1.0
    )
    assert runtime.answering() == []  # nothing loaded yet
    primary, canary, shadow = _served("eta:1", None), _served("eta:2", None), _served("eta:3", None)
    served = {"primary": primary, "canary": canary, "b": primary}
    runtime.table = Table(MagicMock(), MagicMock(), served, (shadow,), b"x-key")
    assert runtime.answering() == [primary, canary]
