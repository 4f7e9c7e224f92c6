"""Redis-backend specifics: one set of counters shared by several clients (gateway
processes), audit seeding applied once, and every key carrying a TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from agentctl.counters import Amounts, Bucket, Limits, WindowSpec, open_counters
from agentctl.counters.redis import RedisCounters
from tests.backends import redis_prefix

T0 = 1_700_000_000.0
DAY = WindowSpec("w|agent|a|day|UTC|x", Limits(pico=1_000), expires_at=T0 + 86_400)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisCounters, RedisCounters]]:
    gen = redis_prefix()
    url, prefix = next(gen)
    a, b = open_counters(url, prefix=prefix), open_counters(f"{url}?prefix={prefix}")
    assert isinstance(a, RedisCounters) and isinstance(b, RedisCounters)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
        next(gen, None)


async def test_two_clients_share_one_limit(pair: tuple[RedisCounters, RedisCounters]) -> None:
    a, b = pair
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).reserve(f"r{i}", [DAY], Amounts(pico=7), now=T0, ttl=60)
            for i in range(400)
        )
    )
    assert sum(r.ok for r in results) == 1_000 // 7
    assert a._pipe.batches < a._pipe.calls  # concurrent calls shared round trips
    bucket = Bucket("r|rpm|a", per_minute=60, capacity=60, cost=1)
    taken = await asyncio.gather(*((a, b)[i % 2].take([bucket], now=T0) for i in range(180)))
    assert sum(t.ok for t in taken) == 60
    slots = await asyncio.gather(
        *((a, b)[i % 2].acquire_slot("c|a", f"h{i}", 3, now=T0, ttl=30) for i in range(9))
    )
    assert sum(s.ok for s in slots) == 3


async def test_seeding_applies_once_per_redis(pair: tuple[RedisCounters, RedisCounters]) -> None:
    a, b = pair
    assert not await a.seeded()
    await a.record([(DAY, Amounts(2, 20, 200))], now=T0)
    await b.record([(DAY, Amounts(2, 20, 200))], now=T0)  # a second gateway starting
    usage = (await b.usage([DAY.key], now=T0))[DAY.key]
    assert usage.settled == Amounts(2, 20, 200) and await b.seeded()
    await a.client.delete(f"{a.prefix}seeded", f"{a.prefix}w:{DAY.key}")  # Redis lost its data
    await b.record([(DAY, Amounts(3, 30, 300))], now=T0)
    assert (await a.usage([DAY.key], now=T0))[DAY.key].settled == Amounts(3, 30, 300)


async def test_every_key_expires(pair: tuple[RedisCounters, RedisCounters]) -> None:
    a, _ = pair
    await a.reserve("r1", [DAY], Amounts(pico=5), now=T0, ttl=60)
    await a.take([Bucket("r|rpm|a", per_minute=60, capacity=5, cost=1)], now=T0)
    await a.acquire_slot("c|a", "h1", 2, now=T0, ttl=30)
    keys = [k async for k in a.client.scan_iter(match=a.prefix + "*")]
    ttls = {k[len(a.prefix) :]: await a.client.pttl(k) for k in keys}
    assert set(ttls) == {f"w:{DAY.key}", "h:r1", "b:r|rpm|a", "c:c|a"}
    assert 86_000_000 < ttls[f"w:{DAY.key}"] <= 86_400_000
    assert 0 < ttls["h:r1"] <= 60_000 and 0 < ttls["c:c|a"] <= 30_000
    assert 0 < ttls["b:r|rpm|a"] <= 2_000  # refills in 1 s, then it is dropped (lossless)


async def test_slots_are_leases_renewed_until_their_holder_dies() -> None:
    gen = redis_prefix()
    url, prefix = next(gen)
    alive = RedisCounters(url, prefix=prefix, slot_lease=0.3)
    other = RedisCounters(url, prefix=prefix, slot_lease=0.3)
    try:
        assert (await alive.acquire_slot("c|a", "h1", 1, now=time.time(), ttl=900)).ok
        await asyncio.sleep(0.9)  # three leases: only renewal keeps the slot
        assert not (await other.acquire_slot("c|a", "h2", 1, now=time.time(), ttl=900)).ok
        await alive.close()  # the holder's process dies without releasing
        await asyncio.sleep(0.6)
        assert (await other.acquire_slot("c|a", "h2", 1, now=time.time(), ttl=900)).ok
    finally:
        await alive.close()
        await other.close()
        next(gen, None)


async def test_a_late_call_never_refills_the_same_seconds_twice(
    pair: tuple[RedisCounters, RedisCounters],
) -> None:
    """Gateways read their clocks before their calls reach Redis, so calls arrive out of
    order; a call with an older `now` must not move the bucket's time backwards."""
    a, b = pair
    bucket = Bucket("r|rpm|late", per_minute=60, capacity=3, cost=1)
    for _ in range(2):
        assert (await a.take([bucket], now=T0)).ok  # level 1
    assert (await a.take([bucket], now=T0 + 1.0)).ok  # +1 refilled, level 1
    assert (await b.take([bucket], now=T0 + 0.5)).ok  # late: refills nothing, level 0
    assert not (await a.take([bucket], now=T0 + 1.5)).ok  # only 0.5 s of refill since
    assert (await a.take([bucket], now=T0 + 2.0)).ok
