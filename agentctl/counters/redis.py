"""Shared counters in Redis (`redis://host:port/db`, extra `agentctl[redis]`).

Every protocol call is one Lua script (`agentctl.counters.lua`) run with EVALSHA
(redis-py's `Script` loads it again after NOSCRIPT, e.g. when Redis restarted), so
several gateway processes share one set of limits with no lost update; concurrent
calls of one process share round trips (`autopipe`). Money stays
integer pico-dollars as decimal strings from Python to HINCRBY and back; bucket
levels are floats, as in the memory backend.

- Keys are `<prefix><kind>:<key>`; the prefix comes from `?prefix=` in the URL or
  `counters.prefix` (default `agentctl:`). Windows, holds, buckets and slot sets carry
  TTLs, so Redis never needs a sweeper and a crashed gateway leaks nothing for longer
  than its TTL (an expired hold keeps its amount charged, as in `memory`).
- `record` (seeding from the audit log at start) applies only when the `seeded` marker
  is absent, so N gateways starting against one Redis seed it once, not N times; a
  Redis that lost its data has no marker and is seeded again.
- A concurrency slot is a lease of `slot_lease` seconds (30), renewed by this process
  while the request runs, up to the `ttl` the governor asked for: a gateway that
  crashes stops renewing, and its slots free themselves within one lease.
- Scripts touch only keys passed in, except `settle`/`release`, which read the window
  keys from the hold: for Redis Cluster put a hash tag in the prefix (`{agentctl}:`).
- Connection failures, timeouts and "cannot write now" replies (OOM under
  `noeviction`, READONLY replica) raise `CountersUnavailable`, which the failover
  wrapper turns into 503s (`on_failure: closed`) or local limits (`open`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MasterDownError, OutOfMemoryError, ReadOnlyError, TryAgainError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentctl.counters.autopipe import AutoPipeline
from agentctl.counters.base import (
    Amounts,
    Bucket,
    BucketState,
    Exceeded,
    RateResult,
    ReserveResult,
    SettleResult,
    SlotResult,
    WindowSpec,
    WindowUsage,
)
from agentctl.counters.failover import CountersUnavailable
from agentctl.counters.lua import SCRIPTS

UNITS = ("requests", "tokens", "pico")
# Redis cannot count for us right now: down, too slow, full (noeviction), a replica
# after a failover, or a cluster in transition. Anything else is a bug and propagates.
UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    MasterDownError,
    TryAgainError,
    OSError,
)
DEFAULT_PREFIX = "agentctl:"
SLOT_LEASE = 30.0
HELD_NOTES = 100_000


def split_url(url: str, prefix: str | None = None) -> tuple[str, str]:
    """(URL for redis-py, key prefix): `?prefix=` is ours, not a connection option."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = [v for k, v in query if k == "prefix"]
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), (ours[-1] if ours else prefix or DEFAULT_PREFIX)


def connect(url: str, timeout: float, max_connections: int = 64) -> aioredis.Redis:
    """A client that fails fast: one retry (a pooled connection gone stale after a Redis
    restart), no backoff, `timeout` for connects and replies. A busy gateway waits for a
    pooled connection (a full pool is load, not an outage)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=max(5.0, timeout),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=True,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _thresholds(spec: WindowSpec, want: tuple[int, int, int]) -> list[str]:
    """Per unit, the largest `used` that still admits `want` (as a string; "" = no limit).

    Refuse when used + want > limit, or (want == 0) when used >= limit: the second is
    used > limit - 1, so the script only ever tests `used > threshold`."""
    out = []
    for unit, amount in zip(UNITS, want, strict=True):
        limit = spec.limits.get(unit)
        out.append("" if limit is None else str(limit - amount if amount else limit - 1))
    return out


def _triple(a: Amounts) -> tuple[int, int, int]:
    return (a.requests, a.tokens, a.pico)


class RedisCounters:
    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        timeout: float = 0.5,
        slot_lease: float = SLOT_LEASE,
    ) -> None:
        target, self.prefix = split_url(url, prefix)
        self.url = _redact(target)  # for messages: never the password
        self.client = connect(target, timeout)
        self.slot_lease = slot_lease
        self._scripts = {name: self.client.register_script(src) for name, src in SCRIPTS.items()}
        self._pipe = AutoPipeline(self.client)
        self._leases: dict[tuple[str, str], float] = {}  # (slot key, holder) -> renew until
        self._held: dict[str, tuple[int, int, int]] = {}  # rid -> what this process reserved
        self._renewer: asyncio.Task[None] | None = None

    def _w(self, key: str) -> str:
        return f"{self.prefix}w:{key}"

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._pipe.run(self._scripts[name], keys, args)
        except UNAVAILABLE as exc:
            raise CountersUnavailable(f"Redis at {self.url}: {exc}") from exc

    # -- budget windows -------------------------------------------------------------

    async def reserve(
        self,
        rid: str,
        windows: Sequence[WindowSpec],
        amounts: Amounts,
        *,
        now: float,
        ttl: float,
    ) -> ReserveResult:
        want = _triple(amounts)
        args: list[Any] = [repr(now), repr(float(ttl)), *map(str, want)]
        for spec in windows:
            args += [repr(float(spec.expires_at)), "1" if spec.enforce else "0"]
            args += _thresholds(spec, want)
        keys = [f"{self.prefix}h:{rid}", *(self._w(s.key) for s in windows)]
        reply = await self._run("reserve", keys, args)
        ok, count = int(reply[0]), int(reply[1])
        if ok and count == 0 and len(reply) == 2:
            return ReserveResult(True)  # this reservation id already holds
        exceeded = []
        for i in range(count):
            index, unit, have = reply[2 + 3 * i : 5 + 3 * i]
            spec, u = windows[int(index) - 1], int(unit) - 1
            limit = spec.limits.get(UNITS[u])
            assert limit is not None
            exceeded.append(Exceeded(spec.key, UNITS[u], int(have), want[u], limit, spec.enforce))
        if not ok:
            return ReserveResult(False, tuple(exceeded))
        if len(self._held) >= HELD_NOTES:
            self._held.clear()  # only an optimisation: settle works without the note
        self._held[rid] = want
        rest = reply[2 + 3 * count :]
        used = {
            spec.key: Amounts(*(int(v) for v in rest[3 * i : 3 * i + 3]))
            for i, spec in enumerate(windows)
        }
        return ReserveResult(True, tuple(exceeded), used)

    async def settle(self, rid: str, actual: Amounts, *, now: float) -> SettleResult | None:
        got = _triple(actual)
        args = [str(v) for v in got]
        held = self._held.pop(rid, None)
        if held is not None:
            args += [str(v) for v in held] + [str(g - h) for g, h in zip(got, held, strict=True)]
        reply = await self._run("settle", [f"{self.prefix}h:{rid}"], args)
        if not reply:
            return None
        strip = len(self.prefix) + 2
        settled = {
            reply[i][strip:]: Amounts(*(int(v) for v in reply[i + 1 : i + 4]))
            for i in range(3, len(reply), 4)
        }
        return SettleResult(settled, Amounts(*(int(v) for v in reply[:3])))

    async def release(self, rid: str, *, now: float) -> bool:
        self._held.pop(rid, None)
        return bool(await self._run("release", [f"{self.prefix}h:{rid}"], []))

    async def usage(self, keys: Sequence[str], *, now: float) -> dict[str, WindowUsage]:
        reply = await self._run("usage", [self._w(k) for k in keys], [repr(now)])
        out = {}
        for i, key in enumerate(keys):
            v = reply[6 * i : 6 * i + 6]
            out[key] = (
                WindowUsage(Amounts(*map(int, v[:3])), Amounts(*map(int, v[3:])))
                if v[0] != ""
                else WindowUsage()
            )
        return out

    async def record(self, items: Iterable[tuple[WindowSpec, Amounts]], *, now: float) -> None:
        totals: dict[str, tuple[float, Amounts]] = {}
        for spec, amounts in items:
            expires, total = totals.get(spec.key, (spec.expires_at, Amounts()))
            totals[spec.key] = (max(expires, spec.expires_at), total + amounts)
        args: list[Any] = [repr(now)]
        for expires, total in totals.values():
            args += [repr(float(expires)), *map(str, _triple(total))]
        keys = [f"{self.prefix}seeded", *map(self._w, totals)]
        await self._run("record", keys, args)

    async def seeded(self) -> bool:
        try:
            return bool(await self.client.exists(f"{self.prefix}seeded"))
        except UNAVAILABLE as exc:
            raise CountersUnavailable(str(exc)) from exc

    # -- rate limits ----------------------------------------------------------------

    async def take(self, buckets: Sequence[Bucket], *, now: float) -> RateResult:
        args: list[Any] = [repr(now)]
        for b in buckets:
            args += [repr(float(b.per_minute)), str(b.capacity), str(b.cost), int(b.enforce)]
        reply = await self._run("take", [f"{self.prefix}b:{b.key}" for b in buckets], args)
        states = tuple(
            BucketState(
                b.key,
                b.capacity,
                int(float(reply[1 + 4 * i])),
                float(reply[2 + 4 * i]),
                float(reply[3 + 4 * i]),
                bool(int(reply[4 + 4 * i])),
            )
            for i, b in enumerate(buckets)
        )
        return RateResult(bool(int(reply[0])), states)

    async def adjust(self, bucket: Bucket, delta: int, *, now: float) -> None:
        args = [repr(now), repr(float(bucket.per_minute)), str(bucket.capacity), str(delta)]
        await self._run("adjust", [f"{self.prefix}b:{bucket.key}"], args)

    # -- concurrency ----------------------------------------------------------------

    async def acquire_slot(
        self, key: str, holder: str, limit: int, *, now: float, ttl: float
    ) -> SlotResult:
        lease = min(ttl, self.slot_lease)
        args = [repr(now), holder, str(limit), repr(float(lease))]
        ok, held = await self._run("acquire_slot", [f"{self.prefix}c:{key}"], args)
        if int(ok) and lease < ttl:
            self._leases[(key, holder)] = time.monotonic() + ttl - lease
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.get_running_loop().create_task(self._renew())
        return SlotResult(bool(int(ok)), int(held), limit)

    async def release_slot(self, key: str, holder: str) -> bool:
        self._leases.pop((key, holder), None)
        try:
            return bool(await self.client.zrem(f"{self.prefix}c:{key}", holder))
        except UNAVAILABLE as exc:
            raise CountersUnavailable(str(exc)) from exc

    async def _renew(self) -> None:
        """Extend held slots by the time that passed, every third of a lease."""
        last = time.monotonic()
        while self._leases:
            await asyncio.sleep(self.slot_lease / 3)
            now = time.monotonic()
            for item in [k for k, until in self._leases.items() if until <= now]:
                del self._leases[item]
            held = list(self._leases)
            if held:
                keys = [f"{self.prefix}c:{key}" for key, _ in held]
                args = [repr(now - last), str(int(self.slot_lease * 1000))]
                with contextlib.suppress(CountersUnavailable):  # lapses during an outage
                    await self._run("renew_slots", keys, args + [h for _, h in held])
            last = now

    # -- housekeeping ---------------------------------------------------------------

    async def ping(self) -> None:
        """A write, not PING: a full (OOM) or read-only Redis answers PING but cannot count."""
        try:
            await self.client.set(f"{self.prefix}probe", "1", px=5000)
        except UNAVAILABLE as exc:
            raise CountersUnavailable(str(exc)) from exc

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._pipe.close()
        await self.client.aclose()
        await self.client.connection_pool.disconnect()
