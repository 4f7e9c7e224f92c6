"""Helpers for the trust tests: a fake clock and steady traffic, no wall-clock anywhere."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from agentctl.facts import CHAT, RequestFacts
from agentctl.money import to_pico
from agentctl.trust import Gate, Observation, TrustConfig, TrustEngine, TrustEvent

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86400.0
CENT = to_pico("0.01")


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Driver:
    engine: TrustEngine
    clock: Clock
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    events: list[TrustEvent] = field(default_factory=list)
    counter: int = 0

    def call(
        self,
        agent: str,
        prompt: str | None = None,
        *,
        cost: int = CENT,
        status: int = 200,
        upstream_fault: bool = False,
        model: str = "gpt-4o",
        source: str = "s1",
        tokens: int = 2500,
    ) -> Gate:
        self.counter += 1
        facts = RequestFacts(CHAT, "/v1/chat/completions", model)
        facts.prompt_hash = prompt if prompt is not None else f"{agent}:{self.counter}"
        now = self.clock.now
        gate = self.engine.before_request(agent, facts, now, source=source)
        self.events += gate.events
        if gate.allowed:
            obs = Observation(
                status,
                cost if status < 400 else 0,
                model,
                tokens - 500,
                500,
                upstream_fault=upstream_fault,
            )
            self.events += self.engine.after_request(agent, obs, now)
        return gate

    def steady(
        self,
        agent: str,
        rate: float,
        seconds: float,
        *,
        make: Callable[[], dict[str, object]] | None = None,
        poisson: bool = True,
    ) -> list[Gate]:
        """Requests at `rate`/s for `seconds`, ticking the engine every minute."""
        end = self.clock.now + seconds
        gates = []
        next_tick = self.clock.now + 60
        while True:
            step = self.rng.expovariate(rate) if poisson else 1.0 / rate
            if self.clock.now + step >= end:
                break
            self.clock.now += step
            if self.clock.now >= next_tick:
                self.events += self.engine.tick(self.clock.now)
                next_tick += 60
            gates.append(self.call(agent, **(make() if make else {})))  # type: ignore[arg-type]
        self.clock.now = end
        return gates

    def nights(self, agent: str, nights: int, rate: float = 0.5, hours: float = 2.0) -> None:
        """A nightly job: `hours` of traffic at 22:00 each night, idle otherwise."""
        for _ in range(nights):
            day = (self.clock.now - T0) // DAY
            self.clock.now = T0 + (day + 1) * DAY - 2 * 3600
            self.steady(agent, rate, hours * 3600)
            self.events += self.engine.tick(self.clock.now)

    def of(self, agent: str, kind: str | None = None) -> list[TrustEvent]:
        return [e for e in self.events if e.agent == agent and (kind is None or e.kind == kind)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> TrustEngine:
    return TrustEngine(TrustConfig(), clock)


@pytest.fixture
def drive(engine: TrustEngine, clock: Clock) -> Driver:
    return Driver(engine, clock)
