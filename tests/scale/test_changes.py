"""The Redis change feed wakes every gateway at once; polling stays the backstop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai

from agentctl.gateway.changes import ChangeFeed, announce
from agentctl.simulator import RunningSimulator
from tests.harness import GatewayHarness

MSG = [{"role": "user", "content": "hi"}]


async def refused_within(gateway: GatewayHarness, seconds: float) -> float:
    client = gateway.aclient(max_retries=0)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=4)
        except openai.PermissionDeniedError as exc:
            assert exc.code == "agent_disabled"
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"still served {seconds}s after the change")


async def test_announced_change_beats_a_slow_poll(
    home: Path, sim: RunningSimulator, redis_url: str
) -> None:
    gateways = [GatewayHarness(home / str(i), sim) for i in range(2)]
    db = f"sqlite:///{home / 'shared.db'}"
    for gw in gateways:  # a one-minute poll: only the feed can be this fast
        await gw.start(database=db, counters=redis_url, policy_poll_ms=60_000)
    try:
        for gw in gateways:
            await gw.aclient().chat.completions.create(model="gpt-4o-mini", messages=MSG)
        await asyncio.to_thread(
            gateways[0].store.set_status, "bot-a", "disabled", actor="t", reason="feed"
        )
        assert await asyncio.to_thread(announce, "agents", settings=gateways[0].settings)
        delays = await asyncio.gather(*(refused_within(gw, 5) for gw in gateways))
        assert max(delays) < 1.5
    finally:
        for gw in gateways:
            await gw.stop()


async def test_announce_without_redis_is_a_no_op(home: Path) -> None:
    from agentctl.config import load_settings

    assert not announce("agents", settings=load_settings(overrides={"counters": "memory://"}))
    assert ChangeFeed.for_settings(load_settings()) is None


async def test_feed_outage_is_survived_and_polling_covers_it(home: Path) -> None:
    feed = ChangeFeed("redis://127.0.0.1:1/0", "x:changes")  # nothing listens there
    feed.start()
    assert not await feed.wait(0.3)  # no announcement: the caller polls on its interval
    await feed.close()
