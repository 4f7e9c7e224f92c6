"""Lanes from policy and from trust tier: the mapping, then through the gateway
(`x-agentctl-lane` on the answer, and upstreams that serve only some lanes)."""

from __future__ import annotations

import time

import pytest

from agentctl.config import Routing
from agentctl.gateway.routing import effective_lane
from agentctl.trust.agent import Containment
from tests.harness import GatewayHarness
from tests.routing.support import BATCH, LANES_POLICY, PROD, STANDARD, apply_policy, of, post


@pytest.mark.parametrize(
    ("policy", "trust", "expected"),
    [
        ("standard", None, "standard"),  # trust off
        ("standard", "normal", "standard"),
        ("priority", "normal", "priority"),
        ("batch", "normal", "batch"),
        ("standard", "priority", "priority"),  # trusted: standard rises
        ("priority", "priority", "priority"),
        ("batch", "priority", "batch"),  # trust never lifts batch work
        ("priority", "low", "batch"),  # contained: batch, whatever policy says
        ("standard", "low", "batch"),
        ("bogus", "normal", "standard"),
    ],
)
def test_effective_lane(policy: str, trust: str | None, expected: str) -> None:
    assert effective_lane(policy, trust) == expected


def test_trust_lanes_can_be_switched_off() -> None:
    assert effective_lane("standard", "priority", trust_lanes=False) == "standard"
    assert effective_lane("priority", "low", trust_lanes=False) == "priority"


async def lane_of(gateway: GatewayHarness, word: str, identity: str) -> str:
    resp = await post(gateway, word, identity)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-agentctl-lane"]


async def test_lanes_from_policy(gateway: GatewayHarness) -> None:
    await apply_policy(gateway, LANES_POLICY)
    assert await lane_of(gateway, "one", PROD) == "priority"
    assert await lane_of(gateway, "two", BATCH) == "batch"
    assert await lane_of(gateway, "three", STANDARD) == "standard"


async def test_lanes_from_trust_tier(gateway: GatewayHarness) -> None:
    await apply_policy(gateway, LANES_POLICY)
    engine = gateway.gw.trust.engine
    engine.pin("std-a", "trusted", "test: a proven agent")
    assert await lane_of(gateway, "trusted", STANDARD) == "priority"
    engine.pin("batch-a", "trusted", "test: trusted batch work stays batch")
    assert await lane_of(gateway, "still batch", BATCH) == "batch"
    assert await lane_of(gateway, "warm up", PROD) == "priority"
    now = time.time()
    agent = engine._agents["prod-a"]  # contain it as a throttle-class event would
    agent.containment = Containment("test", now, now, 100.0, 10**15, now)
    assert await lane_of(gateway, "contained", PROD) == "batch"


async def test_upstreams_serve_only_their_lanes(gateway: GatewayHarness) -> None:
    sim = gateway.sim
    assert sim is not None
    fast = of(sim, "fast", lanes=("priority", "standard"))
    slow = of(sim, "slow", lanes=("batch",))
    await gateway.restart(upstreams=(fast, slow))
    await apply_policy(gateway, LANES_POLICY)
    for word, identity, upstream in [
        ("p", PROD, "fast"),
        ("b", BATCH, "slow"),
        ("s", STANDARD, "fast"),
    ]:
        await post(gateway, word, identity)
        assert (await gateway.records())[-1]["upstream"] == upstream
    await gateway.restart(upstreams=(fast,), routing=Routing())
    await apply_policy(gateway, LANES_POLICY)
    resp = await post(gateway, "nowhere to go", BATCH)
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "lane-not-served"
    assert resp.headers["x-should-retry"] == "false"
