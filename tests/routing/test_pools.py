"""The admission queue driven directly: lane order, reserved slots, cancellation,
timeouts, weights and health. Deterministic: a fake clock, no sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentctl.config import HealthSettings, LaneReserve, PoolOptions, Upstream
from agentctl.gateway.pools import NoUpstream, Pools, Saturated, Slot, lane_ceilings
from agentctl.gateway.routing import Pool

NO_RESERVE = LaneReserve(priority=0, standard=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def upstream(name: str, **kw: Any) -> Upstream:
    return Upstream(name=name, base_url=f"http://{name}.invalid/v1", **kw)


def setup(*members: Upstream, **options: Any) -> tuple[Pools, Pool, Clock]:
    clock = Clock()
    pools = Pools(members, HealthSettings(failures=3, eject_seconds=10), clock=clock)
    return pools, Pool("p", members, PoolOptions(**options)), clock


async def settle_tasks() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, (1, 1, 1)), (4, (4, 4, 3)), (8, (8, 8, 6)), (10, (10, 9, 8)), (20, (20, 18, 15))],
)
def test_lane_ceilings_reserve_a_share_for_higher_lanes(n: int, expected: tuple[int, ...]) -> None:
    assert lane_ceilings(upstream("a", max_concurrency=n)) == expected
    assert lane_ceilings(upstream("a")) == (None, None, None)


async def test_waiters_are_served_by_lane_then_arrival() -> None:
    pools, pool, _ = setup(upstream("a", max_concurrency=1, reserve=NO_RESERVE))
    held = await pools.acquire(pool, "standard")
    order: list[str] = []

    async def wait(tag: str, lane: str) -> Slot:
        slot = await pools.acquire(pool, lane)
        order.append(tag)
        return slot

    tasks = []
    for tag, lane in [
        ("b1", "batch"),
        ("s1", "standard"),
        ("b2", "batch"),
        ("p1", "priority"),
        ("s2", "standard"),
        ("p2", "priority"),
    ]:
        tasks.append(asyncio.create_task(wait(tag, lane)))
        await settle_tasks()
    assert pools.queued("p") == [2, 2, 2]
    pools.release(held, True)
    for _ in tasks:
        await settle_tasks()
        done = [t for t in tasks if t.done() and not getattr(t, "released", False)]
        assert len(done) == 1  # exactly one slot, so exactly one waiter at a time
        done[0].released = True  # type: ignore[attr-defined]
        pools.release(done[0].result(), True)
    assert order == ["p1", "p2", "s1", "s2", "b1", "b2"]
    assert pools.queued("p") == [0, 0, 0]
    assert pools.members["a"].total == 0


async def test_batch_cannot_take_the_reserved_slots_and_priority_borrows_them() -> None:
    pools, pool, _ = setup(upstream("a", max_concurrency=4))  # ceilings 4/4/3
    batch = [await pools.acquire(pool, "batch") for _ in range(3)]
    fourth = asyncio.create_task(pools.acquire(pool, "batch"))
    await settle_tasks()
    assert not fourth.done() and pools.queued("p")[2] == 1
    urgent = await pools.acquire(pool, "priority")  # no wait behind batch work
    assert pools.members["a"].total == 4
    pools.release(urgent, True)
    await settle_tasks()
    assert not fourth.done()  # the freed slot is a reserved one: batch still waits
    pools.release(batch[0], True)
    await settle_tasks()
    assert fourth.done()
    pools.release(fourth.result(), True)
    for slot in batch[1:]:
        pools.release(slot, True)
    assert pools.members["a"].total == 0


async def test_priority_may_fill_every_slot() -> None:
    pools, pool, _ = setup(upstream("a", max_concurrency=4))
    slots = [await pools.acquire(pool, "priority") for _ in range(4)]
    assert pools.members["a"].in_flight == [4, 0, 0]
    with pytest.raises(Saturated):
        await pools.acquire(pool, "priority", timeout=0)
    for slot in slots:
        pools.release(slot, True)


async def test_a_cancelled_waiter_leaves_the_queue_and_frees_nothing() -> None:
    pools, pool, _ = setup(upstream("a", max_concurrency=1, reserve=NO_RESERVE))
    held = await pools.acquire(pool, "standard")
    gone = asyncio.create_task(pools.acquire(pool, "batch"))
    stays = asyncio.create_task(pools.acquire(pool, "batch"))
    await settle_tasks()
    assert pools.queued("p") == [0, 0, 2]
    gone.cancel()
    await settle_tasks()
    assert gone.cancelled()
    assert pools.queued("p") == [0, 0, 1]
    assert pools.members["a"].total == 1  # the held slot is untouched
    pools.release(held, True)
    await settle_tasks()
    assert stays.done()  # the slot went to the waiter still there
    pools.release(stays.result(), True)
    assert pools.members["a"].total == 0


async def test_a_waiter_cancelled_as_it_is_granted_gives_the_slot_back() -> None:
    pools, pool, _ = setup(upstream("a", max_concurrency=1, reserve=NO_RESERVE))
    held = await pools.acquire(pool, "standard")
    first = asyncio.create_task(pools.acquire(pool, "standard"))
    second = asyncio.create_task(pools.acquire(pool, "standard"))
    await settle_tasks()
    pools.release(held, True)  # grants `first` synchronously...
    first.cancel()  # ...which is cancelled before it runs again
    await settle_tasks()
    assert first.cancelled()
    assert second.done()  # the slot `first` gave back went on to `second`
    assert pools.members["a"].total == 1
    pools.release(second.result(), True)
    assert pools.members["a"].total == 0 and pools.queued("p") == [0, 0, 0]


async def test_timeout_raises_saturated_and_leaves_the_queue() -> None:
    pools, pool, _ = setup(upstream("a", max_concurrency=1, reserve=NO_RESERVE))
    held = await pools.acquire(pool, "standard")
    with pytest.raises(Saturated) as info:
        await pools.acquire(pool, "batch", timeout=0.01)
    assert info.value.retry_after >= 1
    assert pools.queued("p") == [0, 0, 0]
    pools.release(held, True)
    assert pools.members["a"].total == 0


async def test_a_full_queue_refuses_at_once() -> None:
    pools, pool, _ = setup(upstream("a", max_concurrency=1, reserve=NO_RESERVE), max_queue=1)
    held = await pools.acquire(pool, "standard")
    waiter = asyncio.create_task(pools.acquire(pool, "standard"))
    await settle_tasks()
    with pytest.raises(Saturated):
        await pools.acquire(pool, "priority")
    pools.release(held, True)
    await settle_tasks()
    pools.release(waiter.result(), True)


async def test_lanes_an_upstream_does_not_serve() -> None:
    pools, pool, _ = setup(upstream("a", lanes=("batch",)), upstream("b", lanes=("priority",)))
    slot = await pools.acquire(pool, "batch")
    assert slot.member.upstream.name == "a"
    pools.release(slot, True)
    with pytest.raises(NoUpstream):
        await pools.acquire(pool, "standard")


async def test_smooth_weighted_round_robin_and_backups() -> None:
    pools, pool, _ = setup(
        upstream("a", weight=2, max_concurrency=10),
        upstream("b", weight=1, max_concurrency=10),
        upstream("spare", weight=0),
    )
    picks = []
    for _ in range(6):
        slot = await pools.acquire(pool, "standard")
        picks.append(slot.member.upstream.name)
        pools.release(slot, True)
    assert picks == ["a", "b", "a", "a", "b", "a"]
    held = [await pools.acquire(pool, "priority") for _ in range(20)]  # a and b full
    spill = await pools.acquire(pool, "priority")
    assert spill.member.upstream.name == "spare"
    for slot in [*held, spill]:
        pools.release(slot, True)


async def test_ejection_then_half_open_probe() -> None:
    pools, pool, clock = setup(upstream("a"), upstream("b", weight=0))
    a = pools.members["a"]
    for _ in range(3):
        slot = await pools.acquire(pool, "standard")
        assert slot.member is a
        pools.release(slot, False)
    assert a.health.state == "ejected"
    slot = await pools.acquire(pool, "standard")
    assert slot.member.upstream.name == "b"  # a is skipped while ejected
    pools.release(slot, True)
    clock.now += 10  # the ejection is over: the next request to a is its probe
    probe = await pools.acquire(pool, "standard")
    assert probe.member is a and probe.probe
    other = await pools.acquire(pool, "standard")
    assert other.member.upstream.name == "b"  # nothing else goes to a while it is probed
    pools.release(other, True)
    pools.release(probe, False)  # the probe failed: ejected again, for twice as long
    assert a.health.state == "ejected" and a.health.remaining() == 20
    clock.now += 20
    probe = await pools.acquire(pool, "standard")
    assert probe.probe
    pools.release(probe, True)
    assert a.health.state == "healthy" and a.health.ejections == 0
    assert a.health.view()["ejections"] == 2


async def test_a_probe_whose_client_left_lets_the_next_request_probe() -> None:
    pools, pool, clock = setup(upstream("a"), upstream("b", weight=0))
    a = pools.members["a"]
    a.health.eject(clock.now)
    clock.now += 10
    probe = await pools.acquire(pool, "standard")
    pools.release(probe, None)
    again = await pools.acquire(pool, "standard")
    assert again.member is a and again.probe
    pools.release(again, True)


async def test_every_member_ejected_routes_anyway() -> None:
    pools, pool, clock = setup(upstream("a"), upstream("b"))
    for member in pools.members.values():
        member.health.eject(clock.now)
    slot = await pools.acquire(pool, "standard")
    assert slot.member.upstream.name == "a" and not slot.probe
    pools.release(slot, True)


async def test_waiters_wake_when_an_ejection_ends() -> None:
    loop = asyncio.get_running_loop()
    members = (
        upstream("a", max_concurrency=1, reserve=NO_RESERVE),
        upstream("b", max_concurrency=1, reserve=NO_RESERVE, weight=0),
    )
    pools = Pools(members, HealthSettings(failures=1, eject_seconds=0.05), clock=loop.time)
    pool = Pool("p", members, PoolOptions())
    on_a = await pools.acquire(pool, "standard")
    on_b = await pools.acquire(pool, "standard")
    assert on_b.member.upstream.name == "b"
    pools.release(on_b, False)  # b fails once: ejected for 50 ms
    waiter = asyncio.create_task(pools.acquire(pool, "standard"))
    await settle_tasks()
    assert not waiter.done()  # a is full and b ejected (not every member is: no panic)
    slot = await asyncio.wait_for(waiter, 5)  # woken by the clock, not by a release
    assert slot.member.upstream.name == "b" and slot.probe
    pools.release(slot, True)
    pools.release(on_a, True)
    assert pools.members["b"].health.state == "healthy"
