"""The Counters contract: every backend must pass all of it (issue 7 adds Redis)."""

from __future__ import annotations

import asyncio
import random

import pytest

from agentctl.counters import Amounts, Bucket, Counters, Limits, WindowSpec, WindowUsage

T0 = 1_700_000_000.0
DAY = WindowSpec(
    "w|agent|a|day|UTC|2023-11-14",
    Limits(requests=10, tokens=1000, pico=500),
    expires_at=T0 + 86_400,
)
TEAM = WindowSpec("w|team|t|day|UTC|2023-11-14", Limits(pico=800), expires_at=T0 + 86_400)


async def test_reserve_records_used_and_returns_it(counters: Counters) -> None:
    got = await counters.reserve("r1", [DAY, TEAM], Amounts(1, 100, 200), now=T0, ttl=60)
    assert got.ok and got.exceeded == ()
    assert got.used[DAY.key] == Amounts(1, 100, 200)
    usage = await counters.usage([DAY.key, TEAM.key, "w|absent"], now=T0)
    assert usage[DAY.key] == WindowUsage(used=Amounts(1, 100, 200), settled=Amounts())
    assert usage["w|absent"] == WindowUsage()


@pytest.mark.parametrize(
    ("amounts", "unit"),
    [
        (Amounts(1, 100, 501), "pico"),
        (Amounts(1, 1001, 1), "tokens"),
        (Amounts(11, 1, 1), "requests"),
    ],
)
async def test_reserve_is_all_or_nothing(counters: Counters, amounts: Amounts, unit: str) -> None:
    got = await counters.reserve("r1", [TEAM, DAY], amounts, now=T0, ttl=60)
    assert not got.ok
    assert [(e.key, e.unit, e.used, e.limit) for e in got.exceeded] == [
        (DAY.key, unit, 0, DAY.limits.get(unit))
    ]
    usage = await counters.usage([DAY.key, TEAM.key], now=T0)
    assert usage[TEAM.key].used == Amounts() and usage[DAY.key].used == Amounts()


async def test_limit_is_inclusive_and_team_window_binds_across_agents(counters: Counters) -> None:
    other = WindowSpec("w|agent|b|day|UTC|2023-11-14", Limits(pico=500), T0 + 86_400)
    assert (await counters.reserve("r1", [DAY, TEAM], Amounts(pico=500), now=T0, ttl=60)).ok
    assert not (await counters.reserve("r2", [DAY, TEAM], Amounts(pico=1), now=T0, ttl=60)).ok
    assert (await counters.reserve("r3", [other, TEAM], Amounts(pico=300), now=T0, ttl=60)).ok
    refused = await counters.reserve("r4", [other, TEAM], Amounts(pico=1), now=T0, ttl=60)
    assert [e.key for e in refused.exceeded] == [TEAM.key]


async def test_shadow_window_never_blocks_but_reports(counters: Counters) -> None:
    shadow = WindowSpec("w|agent|s|day|UTC|x", Limits(pico=10), T0 + 100, enforce=False)
    got = await counters.reserve("r1", [shadow], Amounts(pico=25), now=T0, ttl=60)
    assert got.ok
    assert [(e.unit, e.used, e.requested, e.limit, e.enforce) for e in got.exceeded] == [
        ("pico", 0, 25, 10, False)
    ]
    assert (await counters.usage([shadow.key], now=T0))[shadow.key].used.pico == 25


async def test_settle_refunds_and_charges_extra_idempotently(counters: Counters) -> None:
    await counters.reserve("r1", [DAY], Amounts(1, 400, 300), now=T0, ttl=60)
    result = await counters.settle("r1", Amounts(1, 120, 40), now=T0 + 1)
    assert result is not None and result.settled[DAY.key] == Amounts(1, 120, 40)
    assert result.reserved == Amounts(1, 400, 300)
    assert await counters.settle("r1", Amounts(1, 120, 40), now=T0 + 2) is None
    await counters.reserve("r2", [DAY], Amounts(1, 10, 10), now=T0, ttl=60)
    await counters.settle("r2", Amounts(1, 900, 700), now=T0 + 3)  # may exceed: records truth
    usage = (await counters.usage([DAY.key], now=T0 + 3))[DAY.key]
    assert usage.used == usage.settled == Amounts(2, 1020, 740)


async def test_release_undoes_a_reservation_once(counters: Counters) -> None:
    await counters.reserve("r1", [DAY], Amounts(1, 10, 10), now=T0, ttl=60)
    assert await counters.release("r1", now=T0) is True
    assert await counters.release("r1", now=T0) is False
    assert await counters.settle("r1", Amounts(1, 1, 1), now=T0) is None
    assert (await counters.usage([DAY.key], now=T0))[DAY.key].used == Amounts()


async def test_concurrent_reservations_never_pass_the_limit(counters: Counters) -> None:
    results = await asyncio.gather(
        *(counters.reserve(f"r{i}", [DAY], Amounts(pico=11), now=T0, ttl=60) for i in range(64))
    )
    assert sum(r.ok for r in results) == 500 // 11
    assert (await counters.usage([DAY.key], now=T0))[DAY.key].used.pico == 11 * (500 // 11)


async def test_record_seeds_used_and_settled(counters: Counters) -> None:
    await counters.record([(DAY, Amounts(3, 300, 450)), (DAY, Amounts(1, 1, 1))], now=T0)
    usage = (await counters.usage([DAY.key], now=T0))[DAY.key]
    assert usage.used == usage.settled == Amounts(4, 301, 451)
    assert not (await counters.reserve("r", [DAY], Amounts(pico=50), now=T0, ttl=60)).ok


async def test_expired_windows_read_as_empty(counters: Counters) -> None:
    short = WindowSpec("w|agent|a|hour|UTC|h", Limits(requests=1), expires_at=T0 + 10)
    await counters.reserve("r1", [short], Amounts(1), now=T0, ttl=5)
    assert (await counters.usage([short.key], now=T0 + 11))[short.key] == WindowUsage()


# -- rate limits ------------------------------------------------------------------------

RPM = Bucket("r|rpm|a", per_minute=60, capacity=3, cost=1)


async def test_bucket_allows_burst_then_refills_at_rate(counters: Counters) -> None:
    for _ in range(3):
        assert (await counters.take([RPM], now=T0)).ok
    refused = await counters.take([RPM], now=T0)
    assert not refused.ok and refused.retry_after == pytest.approx(1.0)
    assert refused.buckets[0].remaining == 0 and not refused.buckets[0].allowed
    assert not (await counters.take([RPM], now=T0 + 0.5)).ok
    after = await counters.take([RPM], now=T0 + 1.0)
    assert after.ok and after.buckets[0].remaining == 0
    assert after.buckets[0].reset_after == pytest.approx(3.0)


async def test_take_is_all_or_nothing_across_buckets(counters: Counters) -> None:
    tpm = Bucket("r|tpm|a", per_minute=600, capacity=100, cost=80)
    assert (await counters.take([RPM, tpm], now=T0)).ok
    refused = await counters.take([RPM, tpm], now=T0)  # rpm fits, tpm does not
    assert not refused.ok
    assert refused.retry_after == pytest.approx(6.0)  # 60 tokens short at 10 tokens/s
    state = await counters.take([RPM], now=T0)
    assert state.buckets[0].remaining == 1  # the refused call took nothing from rpm


async def test_request_larger_than_bucket_waits_for_full_then_owes(counters: Counters) -> None:
    tpm = Bucket("r|tpm|a", per_minute=60, capacity=10, cost=25)
    assert (await counters.take([tpm], now=T0)).ok  # full bucket admits, level -15
    refused = await counters.take([tpm], now=T0 + 10)
    assert not refused.ok and refused.retry_after == pytest.approx(15.0)
    assert (await counters.take([tpm], now=T0 + 25)).ok


async def test_shadow_bucket_is_not_drawn_when_it_would_refuse(counters: Counters) -> None:
    shadow = Bucket("r|rpm|s", per_minute=60, capacity=1, cost=1, enforce=False)
    assert (await counters.take([shadow], now=T0)).buckets[0].allowed
    second = await counters.take([shadow], now=T0)
    assert second.ok and not second.buckets[0].allowed
    assert (await counters.take([shadow], now=T0 + 1)).buckets[0].allowed


async def test_adjust_refunds_up_to_capacity_and_charges_debt(counters: Counters) -> None:
    tpm = Bucket("r|tpm|a", per_minute=60, capacity=100, cost=90)
    await counters.take([tpm], now=T0)
    await counters.adjust(tpm, -500, now=T0)  # refund capped at capacity
    assert (await counters.take([tpm], now=T0)).buckets[0].remaining == 10
    await counters.adjust(tpm, 40, now=T0)  # 10 - 40 = -30: owes 30 tokens
    refused = await counters.take([Bucket(tpm.key, 60, 100, 1)], now=T0)
    assert refused.retry_after == pytest.approx(31.0)


async def test_scaled_capacity_applies_immediately(counters: Counters) -> None:
    small = Bucket("r|rpm|a", per_minute=60, capacity=2, cost=1)
    assert (await counters.take([RPM], now=T0)).buckets[0].remaining == 2
    assert (await counters.take([small], now=T0)).buckets[0].remaining == 1


# -- concurrency ------------------------------------------------------------------------


async def test_slots_limit_holders_and_expire(counters: Counters) -> None:
    assert (await counters.acquire_slot("c|a", "h1", 2, now=T0, ttl=30)).ok
    assert (await counters.acquire_slot("c|a", "h2", 2, now=T0, ttl=30)).ok
    full = await counters.acquire_slot("c|a", "h3", 2, now=T0, ttl=30)
    assert not full.ok and full.in_use == 2 and full.limit == 2
    assert await counters.release_slot("c|a", "h1")
    assert not await counters.release_slot("c|a", "h1")
    assert (await counters.acquire_slot("c|a", "h3", 2, now=T0, ttl=30)).ok
    # h2 and h3 crash without releasing: their slots free themselves after the TTL
    assert (await counters.acquire_slot("c|a", "h4", 1, now=T0 + 31, ttl=30)).ok


@pytest.mark.parametrize("seed", range(5))
async def test_random_interleavings_keep_the_books_straight(counters: Counters, seed: int) -> None:
    """A reservation fits exactly when used + amount <= limit; used == settled + holds."""
    rng = random.Random(seed)
    spec = WindowSpec("w|agent|r|day|UTC|x", Limits(pico=1_000), expires_at=T0 + 86_400)
    open_holds: dict[str, int] = {}
    settled = 0
    for step in range(300):
        op = rng.random()
        if op < 0.5 or not open_holds:
            want = rng.randint(1, 120)
            rid = f"r{step}"
            got = await counters.reserve(rid, [spec], Amounts(pico=want), now=T0, ttl=600)
            assert got.ok == (settled + sum(open_holds.values()) + want <= 1_000)
            if got.ok:
                open_holds[rid] = want
        elif op < 0.85:
            rid = rng.choice(sorted(open_holds))
            actual = rng.randint(0, open_holds.pop(rid) + 40)
            settled += actual
            assert await counters.settle(rid, Amounts(pico=actual), now=T0) is not None
        else:
            rid = rng.choice(sorted(open_holds))
            open_holds.pop(rid)
            assert await counters.release(rid, now=T0)
        usage = (await counters.usage([spec.key], now=T0))[spec.key]
        assert usage.settled.pico == settled
        assert usage.used.pico == settled + sum(open_holds.values())


async def test_exhausted_window_refuses_even_a_zero_amount(counters: Counters) -> None:
    await counters.reserve("r1", [DAY], Amounts(pico=400), now=T0, ttl=60)
    await counters.settle("r1", Amounts(pico=600), now=T0)  # overshoot recorded
    refused = await counters.reserve("r2", [DAY], Amounts(1, 1, 0), now=T0, ttl=60)
    assert not refused.ok and [(e.unit, e.used, e.requested) for e in refused.exceeded] == [
        ("pico", 600, 0)
    ]
    zero = WindowSpec("w|agent|z|day|UTC|x", Limits(pico=0), T0 + 60)
    assert not (await counters.reserve("r3", [zero], Amounts(1, 1, 0), now=T0, ttl=60)).ok


# -- exactness and odd keys --------------------------------------------------------------


async def test_amounts_beyond_double_precision_stay_exact(counters: Counters) -> None:
    """$10,000 a month is 1e16 pico-dollars, past 2**53: one pico over must still refuse."""
    limit = 10**16 + 1
    big = WindowSpec("w|agent|big|month|UTC|2023-11", Limits(pico=limit), expires_at=T0 + 86_400)
    assert (await counters.reserve("r1", [big], Amounts(pico=10**16), now=T0, ttl=60)).ok
    refused = await counters.reserve("r2", [big], Amounts(pico=2), now=T0, ttl=60)
    assert not refused.ok and refused.exceeded[0].used == 10**16
    assert (await counters.reserve("r3", [big], Amounts(pico=1), now=T0, ttl=60)).ok
    settled = await counters.settle("r1", Amounts(pico=10**16 - 7), now=T0)
    assert settled is not None and settled.settled[big.key].pico == 10**16 - 7
    usage = (await counters.usage([big.key], now=T0))[big.key]
    assert usage.used.pico == 10**16 - 6 and usage.settled.pico == 10**16 - 7


async def test_keys_with_odd_characters_round_trip(counters: Counters) -> None:
    odd = WindowSpec('w|agent|bot "ß" \\ 日本|day|Europe/Berlin|x', Limits(requests=5), T0 + 600)
    await counters.reserve("r1", [odd], Amounts(1, 2, 3), now=T0, ttl=60)
    settled = await counters.settle("r1", Amounts(1, 1, 1), now=T0)
    assert settled is not None and settled.settled == {odd.key: Amounts(1, 1, 1)}
