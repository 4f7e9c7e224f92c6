"""A client that goes away: the record is still written (once), usage is estimated
from what was seen, the upstream request is aborted rather than drained, and the
gateway keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math

import aiohttp

from tests.gateway.support import BODY, CHAT, HEADERS, eventually, ok
from tests.harness import GatewayHarness

STREAM_BODY = json.dumps({**BODY, "stream": True}).encode()
SLOW = {**HEADERS, "x-sim-chunk-delay-ms": "100"}


async def read_events_then_close(gateway: GatewayHarness, n: int) -> list[bytes]:
    async with aiohttp.ClientSession() as session:
        resp = await session.post(gateway.url + CHAT, data=STREAM_BODY, headers=SLOW)
        assert resp.status == 200
        events = [await resp.content.readuntil(b"\n\n") for _ in range(n)]
        resp.close()  # drop the connection mid-stream
    return events


async def request_rows(gateway: GatewayHarness, count: int = 1) -> list[dict]:
    async def probe() -> list[dict] | None:
        rows = await gateway.records()
        return rows if len(rows) >= count else None

    return await eventually(probe)


async def test_disconnect_mid_stream_is_recorded_with_estimated_usage(
    gateway: GatewayHarness,
) -> None:
    events = await read_events_then_close(gateway, 2)
    assert all(e.startswith(b"data: {") for e in events)
    [rec] = await request_rows(gateway)
    assert (rec["status"], rec["outcome"]) == (200, "disconnected")
    assert rec["message"] == "client disconnected mid-stream"
    assert rec["usage_source"] == "estimated"
    assert rec["prompt_tokens"] == math.ceil(len(STREAM_BODY) / 3)
    # the meter saw at least what the client read, and far less than the whole reply
    assert 2 <= rec["completion_tokens"] < 10
    assert rec["cost_pico"] > 0
    assert rec["stream"] == 1
    await ok(gateway)
    assert len(await gateway.records()) == 2


async def test_disconnect_aborts_the_upstream_request(gateway: GatewayHarness) -> None:
    await read_events_then_close(gateway, 1)
    await request_rows(gateway)
    assert gateway.sim is not None
    state = gateway.sim.state

    async def upstream_done() -> bool:
        return state.in_flight == 0

    await eventually(upstream_done)
    assert (state.received, state.served) == (1, 0), "the upstream stream was drained"


async def test_many_disconnects_leave_the_gateway_healthy(gateway: GatewayHarness) -> None:
    await asyncio.gather(*(read_events_then_close(gateway, 1) for _ in range(5)))
    rows = await request_rows(gateway, 5)
    assert [(r["status"], r["outcome"]) for r in rows] == [(200, "disconnected")] * 5
    assert gateway.gw.inflight == 0
    await ok(gateway)


async def give_up_before_first_byte(gateway: GatewayHarness, body: bytes) -> None:
    headers = {**HEADERS, "x-sim-latency-ms": "300"}
    async with aiohttp.ClientSession() as session:
        try:
            async with asyncio.timeout(0.1):
                await session.post(gateway.url + CHAT, data=body, headers=headers)
        except TimeoutError:
            return
    raise AssertionError("the upstream answered before the client gave up")


async def settled_rows(gateway: GatewayHarness) -> list[dict]:
    """Rows once the upstream reply (after 300 ms) has been handled."""
    assert gateway.sim is not None
    state = gateway.sim.state

    async def upstream_done() -> bool:
        return state.received == 1 and state.in_flight == 0

    async def gateway_done() -> bool:
        return gateway.gw.inflight == 0

    await eventually(upstream_done)
    await eventually(gateway_done)
    return await request_rows(gateway)


async def test_stream_disconnect_before_first_byte_is_one_disconnected_row(
    gateway: GatewayHarness,
) -> None:
    await give_up_before_first_byte(gateway, STREAM_BODY)
    rows = await settled_rows(gateway)
    # nginx's 499: the client closed the connection before it was sent a status
    assert [(r["status"], r["outcome"], r["rule_id"]) for r in rows] == [
        (499, "disconnected", None)
    ]
    await ok(gateway)


async def test_disconnect_before_the_upstream_answers_is_recorded(
    gateway: GatewayHarness,
) -> None:
    await give_up_before_first_byte(gateway, json.dumps(BODY).encode())
    rows = await settled_rows(gateway)
    assert [(r["status"], r["outcome"]) for r in rows] == [(499, "disconnected")]


async def test_hanging_up_while_the_upstream_has_not_answered_frees_it_at_once(
    gateway: GatewayHarness,
) -> None:
    # Regression (third attack): the gateway did not notice a client that hung up before
    # the upstream's headers. It held the upstream connection and slot until the
    # first-byte timeout (120 s), then recorded the request as a 504.
    assert gateway.sim is not None
    headers = {**HEADERS, "x-sim-hang": "1"}
    async with aiohttp.ClientSession() as session:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                await session.post(gateway.url + CHAT, data=json.dumps(BODY), headers=headers)
    # the session is closed: the client is gone

    async def freed() -> bool | None:
        return (gateway.gw.inflight == 0 and gateway.sim.state.in_flight == 0) or None

    await eventually(freed)
    [rec] = await request_rows(gateway)
    assert (rec["status"], rec["outcome"], rec["cost_pico"]) == (499, "disconnected", 0)
    await ok(gateway)
