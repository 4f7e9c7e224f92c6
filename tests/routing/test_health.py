"""Ejection and half-open recovery through the gateway, and streams: a stream that
breaks after its first byte is never retried; one that breaks before it falls back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from agentctl.config import HealthSettings, Routing
from agentctl.simulator import RunningSimulator, start_simulator
from tests.harness import GatewayHarness
from tests.routing.support import PROD, chat, of, post


@pytest.fixture
async def bad() -> AsyncIterator[RunningSimulator]:
    simulator = await start_simulator()
    try:
        yield simulator
    finally:
        await simulator.close()


async def attempts_of_last(gateway: GatewayHarness) -> list[dict[str, object]]:
    records = await gateway.records()
    return json.loads(records[-1]["attempts"])  # type: ignore[no-any-return]


async def test_failing_upstream_is_ejected_then_probed_back(
    gateway: GatewayHarness, bad: RunningSimulator
) -> None:
    bad.config.status = 500
    routing = Routing(health=HealthSettings(failures=2, eject_seconds=30))
    await gateway.restart(
        upstreams=(of(bad, "a"), of(gateway.sim, "b", weight=0)),  # type: ignore[arg-type]
        routing=routing,
    )
    for n in range(2):
        assert (await post(gateway, f"fails over {n}")).status_code == 200
        assert await attempts_of_last(gateway) == [
            {"upstream": "a", "status": 500},
            {"upstream": "b", "status": 200},
        ]
    a = gateway.gw.pools.members["a"]
    assert a.health.state == "ejected"
    assert (await post(gateway, "skips a")).status_code == 200
    assert await attempts_of_last(gateway) == [{"upstream": "b", "status": 200}]
    assert len(bad.state.requests) == 2  # nothing reached a while it was ejected

    a.health.until = 0.0  # the backoff is over (no waiting in tests)
    bad.config.status = None  # and a has recovered
    assert (await post(gateway, "probes a")).status_code == 200
    assert await attempts_of_last(gateway) == [{"upstream": "a", "status": 200, "probe": True}]
    assert a.health.state == "healthy"
    assert (await post(gateway, "a again")).status_code == 200
    assert await attempts_of_last(gateway) == [{"upstream": "a", "status": 200}]


async def test_a_failed_probe_ejects_again_and_the_client_still_gets_an_answer(
    gateway: GatewayHarness, bad: RunningSimulator
) -> None:
    bad.config.status = 503
    routing = Routing(health=HealthSettings(failures=1, eject_seconds=30))
    await gateway.restart(
        upstreams=(of(bad, "a"), of(gateway.sim, "b", weight=0)),  # type: ignore[arg-type]
        routing=routing,
    )
    assert (await post(gateway, "ejects a")).status_code == 200
    a = gateway.gw.pools.members["a"]
    a.health.until = 0.0
    assert (await post(gateway, "probe fails")).status_code == 200
    assert await attempts_of_last(gateway) == [
        {"upstream": "a", "status": 503, "probe": True},
        {"upstream": "b", "status": 200},
    ]
    assert a.health.state == "ejected" and a.health.remaining() > 30  # backoff doubled
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        view = (await client.get("/admin/upstreams")).json()
        health = (await client.get("/admin/health")).json()
    state = {u["name"]: u["health"]["state"] for u in view["upstreams"]}
    assert state == {"a": "ejected", "b": "healthy"}
    assert health["upstreams"] == {"healthy": 1, "half-open": 0, "ejected": 1}


async def stream(gateway: GatewayHarness, word: str, **headers: str) -> httpx.Response:
    merged = {"X-Agent-Identity": PROD, "Content-Type": "application/json", **headers}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        return await client.post(
            "/v1/chat/completions", content=chat(word, stream=True), headers=merged
        )


async def test_a_stream_broken_after_its_first_byte_is_not_retried(
    gateway: GatewayHarness, bad: RunningSimulator
) -> None:
    await gateway.restart(upstreams=(of(bad, "a"), of(gateway.sim, "b")))  # type: ignore[arg-type]
    resp = await stream(gateway, "breaks midway", **{"x-sim-reset-after": "2"})
    assert resp.status_code == 200
    events = [e for e in resp.text.split("\n\n") if e.startswith("data: ")]
    assert len(events) == 3  # two relayed events, then the gateway's error event
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_reset"
    records = await gateway.records()
    [rec] = records
    assert json.loads(rec["attempts"]) == [
        {"upstream": "a", "status": 200, "error": "stream_reset", "after_first_byte": True}
    ]
    assert (rec["outcome"], rec["upstream"]) == ("upstream_error", "a")
    assert rec["usage_source"] == "estimated"
    assert gateway.sim.state.requests == []  # type: ignore[union-attr]
    assert gateway.gw.pools.members["a"].failures == 1


async def test_a_stream_broken_before_its_first_event_falls_back(
    gateway: GatewayHarness, bad: RunningSimulator
) -> None:
    bad.config.reset_after = 0  # headers, then a reset before any event
    await gateway.restart(upstreams=(of(bad, "a"), of(gateway.sim, "b")))  # type: ignore[arg-type]
    resp = await stream(gateway, "breaks at once")
    assert resp.status_code == 200
    assert resp.text.rstrip().endswith("data: [DONE]")
    [rec] = await gateway.records()
    attempts = json.loads(rec["attempts"])
    assert attempts[0]["upstream"] == "a" and attempts[0]["status"] == 200
    assert attempts[0]["error"] in ("ClientPayloadError", "ServerDisconnectedError")
    assert attempts[1] == {"upstream": "b", "status": 200}
    assert (rec["outcome"], rec["upstream"], rec["usage_source"]) == ("served", "b", "reported")


def test_an_ejected_upstream_used_as_the_last_resort_heals_when_it_answers() -> None:
    # Regression (third attack): the only upstream, ejected after 429/500/503s, kept
    # serving 200s (panic routing) yet stayed ejected, and /admin/health said degraded.
    from agentctl.gateway.health import EJECTED, HEALTHY, Health

    health = Health(HealthSettings(failures=3, eject_seconds=10), clock=lambda: 100.0)
    for _ in range(3):
        health.record(False, probe=False)
    assert health.state == EJECTED
    assert health.start() is False  # still inside its ejection: panic routing, no probe
    health.record(True, probe=False)
    assert health.state == HEALTHY and health.ejections == 0
