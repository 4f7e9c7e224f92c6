"""Admission through the real gateway with held requests: lane order under
saturation, 503 `upstream-saturated`, and clients leaving the queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from agentctl.config import LaneReserve, Routing
from tests.harness import GatewayHarness
from tests.routing.support import (
    BATCH,
    LANES_POLICY,
    PROD,
    STANDARD,
    HeldUpstream,
    apply_policy,
    chat,
    member,
    post,
    until,
)

NO_RESERVE = LaneReserve(priority=0, standard=0)


@pytest.fixture
async def held() -> AsyncIterator[HeldUpstream]:
    upstream = await HeldUpstream().start()
    try:
        yield upstream
    finally:
        await upstream.close()


async def start(
    gateway: GatewayHarness, held: HeldUpstream, *, limit: int = 1, **routing: object
) -> None:
    one = member("held", held.url, max_concurrency=limit, reserve=NO_RESERVE)
    await gateway.restart(upstreams=(one,), routing=Routing(**routing))  # type: ignore[arg-type]
    await apply_policy(gateway, LANES_POLICY)


def queued(gateway: GatewayHarness) -> list[int]:
    return gateway.gw.pools.queued("held")


async def test_saturated_upstream_serves_waiters_by_lane_then_arrival(
    gateway: GatewayHarness, held: HeldUpstream
) -> None:
    await start(gateway, held)
    first = asyncio.create_task(post(gateway, "w0", STANDARD))
    await until(lambda: held.arrived == ["w0"], "the first request to hold the slot")
    order = [("b1", BATCH), ("s1", STANDARD), ("b2", BATCH), ("p1", PROD), ("s2", STANDARD)]
    tasks = [first]
    for n, (word, identity) in enumerate(order, start=1):
        tasks.append(asyncio.create_task(post(gateway, word, identity)))
        await until(lambda n=n: sum(queued(gateway)) == n, f"{word} to queue")
    assert queued(gateway) == [1, 2, 2]
    for k, word in enumerate(["w0", "p1", "s1", "s2", "b1"], start=2):
        held.release(word)
        await until(lambda k=k: len(held.arrived) == k, "the next request to be sent")
    held.release("b2")
    responses = await asyncio.gather(*tasks)
    assert held.arrived == ["w0", "p1", "s1", "s2", "b1", "b2"]
    assert all(r.status_code == 200 for r in responses)
    lanes = {r.request.content.decode(): r.headers["x-agentctl-lane"] for r in responses}
    assert lanes[chat("p1").decode()] == "priority"
    assert lanes[chat("b1").decode()] == "batch"
    records = await gateway.records()
    waited = [json.loads(r["attempts"])[0] for r in records if r["status"] == 200]
    assert sum("queued_ms" in a for a in waited) == 5  # everyone but the first waited
    assert {a.get("lane") for a in waited if "queued_ms" in a} == {"priority", "standard", "batch"}


async def test_bounded_wait_then_503_upstream_saturated(
    gateway: GatewayHarness, held: HeldUpstream
) -> None:
    await start(gateway, held, queue_timeout=0.05)
    first = asyncio.create_task(post(gateway, "w0", STANDARD))
    await until(lambda: held.arrived == ["w0"], "the slot to be taken")
    resp = await post(gateway, "late", BATCH)
    assert resp.status_code == 503
    err = resp.json()["error"]
    assert err["code"] == "upstream-saturated" and err["type"] == "api_error"
    assert "batch lane" in err["message"]
    assert int(resp.headers["retry-after"]) >= 1 and resp.headers["retry-after-ms"]
    assert resp.headers["x-agentctl-lane"] == "batch"
    held.release("w0")
    assert (await first).status_code == 200
    records = await gateway.records()
    refused = [r for r in records if r["status"] == 503]
    assert len(refused) == 1
    rec = refused[0]
    assert (rec["outcome"], rec["rule_id"], rec["attempts"]) == (
        "refused",
        "upstream-saturated",
        "",
    )
    assert rec["cost_pico"] == 0
    assert held.arrived == ["w0"]  # the refused request never reached the upstream


async def test_a_client_that_leaves_the_queue_frees_nothing(
    gateway: GatewayHarness, held: HeldUpstream
) -> None:
    await start(gateway, held)
    first = asyncio.create_task(post(gateway, "w0", STANDARD))
    await until(lambda: held.arrived == ["w0"], "the slot to be taken")
    leaver = asyncio.create_task(post(gateway, "gone", BATCH))
    stays = asyncio.create_task(post(gateway, "stays", BATCH))
    await until(lambda: queued(gateway) == [0, 0, 2], "two waiters")
    leaver.cancel()  # the client closes its connection while queued
    await until(lambda: queued(gateway) == [0, 0, 1], "the leaver to leave the queue")
    assert gateway.gw.pools.members["held"].total == 1  # still only the held request
    held.release("w0")
    await until(lambda: len(held.arrived) == 2, "the remaining waiter to be sent")
    held.release("stays")
    assert (await first).status_code == 200 and (await stays).status_code == 200
    assert held.arrived == ["w0", "stays"]
    assert gateway.gw.pools.members["held"].total == 0
    records = await gateway.records()
    [gone] = [r for r in records if r["outcome"] == "disconnected"]
    assert gone["attempts"] == "" and "queued" in gone["message"]
    assert gone["cost_pico"] == 0
