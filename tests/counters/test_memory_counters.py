"""Memory-backend specifics: garbage collection keeps it bounded."""

from __future__ import annotations

from agentctl.counters import Amounts, Bucket, Limits, WindowSpec
from agentctl.counters.memory import MemoryCounters

T0 = 1_700_000_000.0


async def test_sweep_drops_expired_windows_holds_full_buckets_and_slots() -> None:
    mem = MemoryCounters()
    spec = WindowSpec("w|old", Limits(), expires_at=T0 + 10)
    await mem.reserve("r1", [spec], Amounts(1), now=T0, ttl=5)
    await mem.take([Bucket("r|rpm|a", 60, 5, 1)], now=T0)
    await mem.acquire_slot("c|a", "h", 1, now=T0, ttl=5)
    assert mem.size() == 4
    mem.sweep(T0 + 11)
    assert mem.size() == 0


async def test_memory_stays_bounded_as_hourly_windows_roll_over() -> None:
    mem = MemoryCounters(sweep_every=16)
    for hour in range(2000):
        now = T0 + hour * 3600
        spec = WindowSpec(f"w|agent|a|hour|UTC|{hour}", Limits(requests=5), expires_at=now + 3600)
        assert (await mem.reserve(f"r{hour}", [spec], Amounts(1), now=now, ttl=60)).ok
        await mem.settle(f"r{hour}", Amounts(1), now=now)
    assert mem.size() <= 40
