"""Per-upstream concurrency slots and the lane-ordered admission queue.

Every upstream with a `max_concurrency` N has N slots; a request holds one from the
moment it is sent until its answer (the whole stream) is relayed. When no eligible
member of a request's pool has a free slot, the request waits. Waiters are served in
lane order (priority, standard, batch), then arrival order; a waiter whose candidate
upstreams are all full never blocks one whose candidates differ.

Batch can never starve production, and production borrows idle batch capacity:
lanes are not partitions but ceilings. A request of lane L may start on an upstream
only while its total in-flight count is below L's ceiling: N for priority,
N - floor(N x reserve.priority) for standard, N - floor(N x (reserve.priority +
reserve.standard)) for batch (defaults 10% and 15%). So batch can fill at most 75% of
an upstream; the rest is always there for production (which never waits behind a
full upstream of batch work), and production may use every slot, batch's included.
The price: with only batch traffic, a quarter of the capacity idles. With no
`max_concurrency` nothing is counted and nothing ever waits.

Choosing a member: the healthy members (`health.Health`) that serve the lane and have
room, by smooth weighted round-robin over `weight` (nginx's algorithm: deterministic,
spreads evenly); weight 0 members are backups, used only when no weighted member has
room. When every member is ejected they are all used anyway (panic routing: better a
likely failure than a certain one).

Cancellation: a waiter that is cancelled (its client went away) or times out leaves
the queue; if a slot was granted to it in the same instant, it gives that slot back.
It never releases a slot it did not take.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agentctl.config import HealthSettings, Upstream
from agentctl.gateway.health import EJECTED, Health
from agentctl.gateway.routing import LANES, Pool


class Saturated(Exception):
    def __init__(self, retry_after: float, waited: float) -> None:
        super().__init__("upstream saturated")
        self.retry_after = retry_after
        self.waited = waited


class NoUpstream(Exception):
    """No member of the pool serves the lane (or all were tried)."""


class ClientGone(Exception):
    """The client disconnected while its request waited for a slot."""


GONE_POLL = 0.25  # seconds between checks that a queued request's client is still there


def lane_ceilings(upstream: Upstream) -> tuple[int | None, ...]:
    n = upstream.max_concurrency
    if n is None:
        return (None,) * len(LANES)
    above_standard = math.floor(n * upstream.reserve.priority + 1e-9)
    above_batch = math.floor(n * (upstream.reserve.priority + upstream.reserve.standard) + 1e-9)
    return (n, n - above_standard, n - above_batch)


class Member:
    """An upstream's live state: slots in use by lane, health, smooth-WRR weight."""

    def __init__(self, upstream: Upstream, health: Health) -> None:
        self.upstream = upstream
        self.health = health
        self.ceilings = lane_ceilings(upstream)
        self.lanes = frozenset(LANES.index(lane) for lane in upstream.lanes)
        self.in_flight = [0] * len(LANES)
        self.total = 0
        self.current = 0  # smooth weighted round-robin
        self.requests = 0
        self.failures = 0
        self.hold_ewma = 0.0  # seconds a successful request held its slot

    def has_room(self, lane: int) -> bool:
        ceiling = self.ceilings[lane]
        return ceiling is None or self.total < ceiling


@dataclass(eq=False, slots=True)
class Slot:
    member: Member
    lane: int
    probe: bool
    started: float
    queued: float  # seconds spent waiting for it
    released: bool = False


@dataclass(eq=False, slots=True)
class Waiter:
    seq: int
    lane: int
    pool: str
    candidates: tuple[Member, ...]
    enqueued: float
    future: asyncio.Future[Slot] = field(repr=False)


class Pools:
    def __init__(
        self,
        upstreams: Iterable[Upstream],
        health: HealthSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.members = {u.name: Member(u, Health(health, clock)) for u in upstreams}
        self._queues: list[dict[tuple[str, ...], deque[Waiter]]] = [{} for _ in LANES]
        self.waiting: dict[str, list[int]] = {}  # pool name -> waiters by lane
        self._seq = itertools.count()

    def candidates(self, pool: Pool, lane: int, exclude: Iterable[str] = ()) -> tuple[Member, ...]:
        skip = set(exclude)
        members = (self.members[u.name] for u in pool.members if u.name not in skip)
        return tuple(m for m in members if lane in m.lanes)

    async def acquire(
        self,
        pool: Pool,
        lane: str,
        *,
        exclude: Iterable[str] = (),
        timeout: float | None = None,
        gone: Callable[[], bool] | None = None,
    ) -> Slot:
        """A slot on some member of `pool`, waiting in `lane` up to `timeout` seconds.

        aiohttp does not cancel a handler whose client left, so a waiter polls `gone`
        (every GONE_POLL s) and leaves the queue with `ClientGone`."""
        li = LANES.index(lane)
        candidates = self.candidates(pool, li, exclude)
        if not candidates:
            raise NoUpstream(pool.name)
        now = self.clock()
        if not any(self._queues[k] for k in range(li + 1)):
            member = self._pick(candidates, li, now)
            if member is not None:
                return self._take(member, li, now, 0.0)
        waiting = self.waiting.setdefault(pool.name, [0] * len(LANES))
        if (timeout is not None and timeout <= 0) or sum(waiting) >= pool.options.max_queue:
            raise Saturated(self.retry_after(candidates), 0.0)
        loop = asyncio.get_running_loop()
        waiter = Waiter(next(self._seq), li, pool.name, candidates, now, loop.create_future())
        key = (pool.name, *(m.upstream.name for m in candidates))
        self._queues[li].setdefault(key, deque()).append(waiter)
        waiting[li] += 1
        self._dispatch()
        try:
            async with asyncio.timeout(timeout):
                while not waiter.future.done():
                    await asyncio.wait((waiter.future,), timeout=GONE_POLL if gone else None)
                    if gone is not None and not waiter.future.done() and gone():
                        raise ClientGone
            return waiter.future.result()
        except TimeoutError:
            if _granted(waiter):
                return waiter.future.result()  # granted as the clock ran out: keep it
            self._leave(waiter)
            raise Saturated(self.retry_after(candidates), self.clock() - now) from None
        except BaseException:
            if _granted(waiter):
                self.release(waiter.future.result(), None)  # taken for us: give it back
            else:
                self._leave(waiter)
            raise

    def release(self, slot: Slot, ok: bool | None) -> None:
        """Give the slot back; `ok` is the upstream's health verdict (None: no verdict)."""
        if slot.released:
            return
        slot.released = True
        member = slot.member
        member.in_flight[slot.lane] -= 1
        member.total -= 1
        now = self.clock()
        if ok is False:
            member.failures += 1
        elif ok:
            held = now - slot.started
            member.hold_ewma = held if not member.hold_ewma else 0.8 * member.hold_ewma + 0.2 * held
        was_ejected = member.health.state == EJECTED
        member.health.record(ok, probe=slot.probe, now=now)
        if member.health.state == EJECTED and not was_ejected:
            self._wake_at(member.health.until - now)
        self._dispatch()

    def retry_after(self, candidates: Iterable[Member]) -> float:
        """A hint: how long the quickest candidate usually holds a slot (at least 1 s)."""
        holds = [m.hold_ewma for m in candidates if m.hold_ewma]
        return max(1.0, min(holds, default=1.0))

    def queued(self, pool: str) -> list[int]:
        return list(self.waiting.get(pool, [0] * len(LANES)))

    # -- internals -----------------------------------------------------------------------
    def _pick(self, candidates: tuple[Member, ...], lane: int, now: float) -> Member | None:
        healthy = [m for m in candidates if m.health.available(now)]
        roomy = [m for m in (healthy or candidates) if m.has_room(lane)]
        if not roomy:
            return None
        weighted = [m for m in roomy if m.upstream.weight > 0]
        if not weighted:
            return roomy[0]
        best = weighted[0]
        for member in weighted:
            member.current += member.upstream.weight
            if member.current > best.current:
                best = member
        best.current -= sum(m.upstream.weight for m in weighted)
        return best

    def _take(self, member: Member, lane: int, now: float, queued: float) -> Slot:
        member.in_flight[lane] += 1
        member.total += 1
        member.requests += 1
        return Slot(member, lane, member.health.start(now), now, queued)

    def _dispatch(self) -> None:
        now = self.clock()
        for lane, groups in enumerate(self._queues):
            if not groups:
                continue
            for key in sorted(groups, key=lambda k: groups[k][0].seq if groups[k] else -1):
                queue = groups[key]
                while queue:
                    waiter = queue[0]
                    if waiter.future.done():  # cancelled or timed out: already left
                        queue.popleft()
                        continue
                    member = self._pick(waiter.candidates, lane, now)
                    if member is None:
                        break
                    queue.popleft()
                    self.waiting[waiter.pool][lane] -= 1
                    waiter.future.set_result(self._take(member, lane, now, now - waiter.enqueued))
                if not queue:
                    del groups[key]

    def _leave(self, waiter: Waiter) -> None:
        if not waiter.future.done():
            waiter.future.cancel()
        self.waiting[waiter.pool][waiter.lane] -= 1

    def _wake_at(self, delay: float) -> None:
        """Ejections end by the clock, not by a release: look at the queue again then."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(max(delay, 0.0) + 0.001, self._dispatch)

    # -- readings for /metrics (metrics.UpstreamSource) ------------------------------------
    def slot_readings(self) -> list[tuple[str, str, int]]:
        return [
            (name, lane, member.in_flight[i])
            for name, member in self.members.items()
            for i, lane in enumerate(LANES)
        ]

    def queue_readings(self) -> list[tuple[str, str, int]]:
        return [
            (pool, lane, counts[i])
            for pool, counts in self.waiting.items()
            for i, lane in enumerate(LANES)
        ]

    def health_readings(self) -> list[tuple[str, bool]]:
        return [(name, m.health.state != EJECTED) for name, m in self.members.items()]

    def view(self) -> dict[str, Any]:
        return {name: member_view(m) for name, m in self.members.items()}


def member_view(member: Member) -> dict[str, Any]:
    upstream = member.upstream
    return {
        "name": upstream.name,
        "base_url": upstream.base_url,
        "api": upstream.api,
        "lanes": list(upstream.lanes),
        "weight": upstream.weight,
        "max_concurrency": upstream.max_concurrency,
        "lane_ceilings": dict(zip(LANES, member.ceilings, strict=True)),
        "in_flight": {**dict(zip(LANES, member.in_flight, strict=True)), "total": member.total},
        "health": member.health.view(),
        "requests": member.requests,
        "failures": member.failures,
    }


def _granted(waiter: Waiter) -> bool:
    future = waiter.future
    return future.done() and not future.cancelled()
