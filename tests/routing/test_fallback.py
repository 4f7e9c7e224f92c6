"""Fallback before the first byte, through the gateway: each failure kind moves the
request to the next member, one audit record lists every attempt, and the request is
charged once, for the attempt that answered."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentctl.config import Pool, Routing, Timeouts
from agentctl.pricing import Pricer
from agentctl.simulator import RunningSimulator, start_simulator
from agentctl.usage import Usage
from tests.harness import IDENTITY, GatewayHarness
from tests.routing.support import apply_policy, of, post, until


@pytest.fixture
async def bad() -> AsyncIterator[RunningSimulator]:
    simulator = await start_simulator()
    try:
        yield simulator
    finally:
        await simulator.close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there: connection refused


async def one_record(gateway: GatewayHarness) -> dict[str, Any]:
    [rec] = await gateway.records()
    return rec


def expected_cost(rec: dict[str, Any]) -> int:
    usage = Usage(prompt_tokens=rec["prompt_tokens"], completion_tokens=rec["completion_tokens"])
    return Pricer().cost(usage, "gpt-4o-mini", "openai").pico


async def check_single_charge(gateway: GatewayHarness, rec: dict[str, Any]) -> None:
    """The record's cost, and the agent's budget windows, count one request once."""
    assert rec["usage_source"] == "reported"
    assert rec["cost_pico"] == expected_cost(rec) > 0
    await until_settled(gateway)
    params = {"owner": "team-ml", "purpose": "production"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        view = (await client.get("/admin/agents/prod-a", params=params)).json()
    tokens = rec["prompt_tokens"] + rec["completion_tokens"]
    once = {"requests": 1, "tokens": tokens, "pico": rec["cost_pico"]}
    windows = [w for w in view["budgets"] if w["subject"] in ("agent", "team")]
    assert len(windows) == 6  # hour, day, month for the agent and for its team
    for window in windows:
        assert window["settled"] == window["used"] == once, window["budget"]


async def until_settled(gateway: GatewayHarness) -> None:
    await until(lambda: gateway.gw.inflight == 0, "the request to settle")


BUDGETS = """
apiVersion: agentctl/v1
defaults:
  budgets:
    day: {usd: "100"}
"""


@pytest.mark.parametrize(
    ("kind", "setup", "first"),
    [
        ("5xx", {"status": 500}, {"status": 500}),
        ("5xx", {"status": 503}, {"status": 503}),
        ("429", {"status": 429}, {"status": 429}),
        ("timeout", {"hang": True}, {"error": "timeout"}),
    ],
)
async def test_each_failure_kind_falls_back_once_charged(
    gateway: GatewayHarness,
    bad: RunningSimulator,
    kind: str,
    setup: dict[str, Any],
    first: dict[str, Any],
) -> None:
    for name, value in setup.items():
        setattr(bad.config, name, value)
    fast = Timeouts(first_byte=0.3)
    await gateway.restart(
        upstreams=(of(bad, "a", timeouts=fast), of(gateway.sim, "b", weight=0))  # type: ignore[union-attr]
    )
    await apply_policy(gateway, BUDGETS)
    resp = await post(gateway, f"fallback on {kind}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "chat.completion"
    rec = await one_record(gateway)
    assert json.loads(rec["attempts"]) == [
        {"upstream": "a", **first},
        {"upstream": "b", "status": 200},
    ]
    assert (rec["upstream"], rec["status"], rec["outcome"]) == ("b", 200, "served")
    await check_single_charge(gateway, rec)
    assert len(gateway.sim.state.requests) == 1  # type: ignore[union-attr]


async def test_connection_refused_falls_back(gateway: GatewayHarness) -> None:
    dead = of(gateway.sim, "dead")  # type: ignore[arg-type]
    dead = dead.model_copy(update={"base_url": dead_url()})
    await gateway.restart(upstreams=(dead, of(gateway.sim, "b", weight=0)))  # type: ignore[arg-type]
    resp = await post(gateway, "refused first")
    assert resp.status_code == 200
    rec = await one_record(gateway)
    assert json.loads(rec["attempts"]) == [
        {"upstream": "dead", "error": "ClientConnectorError"},
        {"upstream": "b", "status": 200},
    ]
    assert rec["cost_pico"] == expected_cost(rec) > 0


async def test_the_last_failure_reaches_the_client_when_every_member_fails(
    gateway: GatewayHarness, bad: RunningSimulator
) -> None:
    bad.config.status = 503
    gateway.sim.config.status = 500  # type: ignore[union-attr]
    await gateway.restart(upstreams=(of(bad, "a"), of(gateway.sim, "b")))  # type: ignore[arg-type]
    resp = await post(gateway, "nothing works")
    assert resp.status_code == 500  # b's answer, passed through
    assert resp.headers["x-agentctl-upstream-status"] == "500"
    rec = await one_record(gateway)
    assert json.loads(rec["attempts"]) == [
        {"upstream": "a", "status": 503},
        {"upstream": "b", "status": 500},
    ]
    assert (rec["outcome"], rec["cost_pico"]) == ("upstream_error", 0)


async def test_fallback_follows_the_pool_options(
    gateway: GatewayHarness, bad: RunningSimulator
) -> None:
    bad.config.status = 500
    members = (of(bad, "a"), of(gateway.sim, "b"))  # type: ignore[arg-type]
    no_5xx = Pool(name="gpt", models=("gpt-*",), upstreams=("a", "b"), fallback_on=("429",))
    await gateway.restart(upstreams=members, pools=(no_5xx,))
    resp = await post(gateway, "5xx is not retried here")
    assert resp.status_code == 500
    assert json.loads((await one_record(gateway))["attempts"]) == [{"upstream": "a", "status": 500}]

    await gateway.restart(upstreams=members, routing=Routing(max_attempts=1))
    resp = await post(gateway, "one attempt only")
    assert resp.status_code == 500


async def test_explicit_pool_order_aliases_and_models(
    gateway: GatewayHarness, bad: RunningSimulator
) -> None:
    bad.config.status = 502
    a = of(bad, "a", aliases={"fast": "gpt-4o-mini"})
    b = of(gateway.sim, "b", aliases={"fast": "gpt-4o"})  # type: ignore[arg-type]
    pool = Pool(name="fast", models=("fast",), upstreams=("a", "b"))
    await gateway.restart(upstreams=(a, b), pools=(pool,))
    resp = await post(gateway, "alias", model="fast")
    assert resp.status_code == 200
    sent = gateway.sim.state.requests[-1]  # type: ignore[union-attr]
    assert sent.json["model"] == "gpt-4o"  # b's own name for `fast`
    assert bad.state.requests[-1].json["model"] == "gpt-4o-mini"
    rec = await one_record(gateway)
    assert (rec["model"], rec["upstream_model"], rec["upstream"]) == ("fast", "gpt-4o", "b")
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        models = await client.get("/models", headers={"X-Agent-Identity": IDENTITY})
    assert "fast" in {m["id"] for m in models.json()["data"]}
