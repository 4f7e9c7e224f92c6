"""In-process counters (`memory://`): the default for a single gateway process.

Atomic under asyncio because no method awaits anything: each call runs from check
to commit without yielding to the event loop. O(1) per call (slot calls are
O(holders of that key)); old windows, expired reservations, idle buckets and
expired slots are swept every `max(1024, live entries)` calls, amortised O(1).
A bucket is dropped once it has refilled completely, which loses nothing: a fresh
bucket starts full. State lives only in this process: the gateway rebuilds budget
windows from the audit log at start (`Governor.seed`) and refuses to run several
processes against memory counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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

_UNITS = ("requests", "tokens", "pico")
_UNLIMITED = (None, None, None)
_ZERO = (0, 0, 0)


class _Window:
    __slots__ = ("expires_at", "settled", "used")

    def __init__(self, expires_at: float) -> None:
        self.used = [0, 0, 0]
        self.settled = [0, 0, 0]
        self.expires_at = expires_at


class _Hold:
    __slots__ = ("amounts", "expires_at", "keys")

    def __init__(self, keys: tuple[str, ...], amounts: Amounts, expires_at: float) -> None:
        self.keys = keys
        self.amounts = amounts
        self.expires_at = expires_at


def _triple(a: Amounts) -> tuple[int, int, int]:
    return (a.requests, a.tokens, a.pico)


class MemoryCounters:
    def __init__(self, *, sweep_every: int = 1024) -> None:
        self._windows: dict[str, _Window] = {}
        self._holds: dict[str, _Hold] = {}
        self._buckets: dict[str, tuple[float, float, float]] = {}  # level, at, full_at
        self._slots: dict[str, dict[str, float]] = {}  # key -> holder -> expires_at
        self._min_sweep = sweep_every
        self._sweep_every = sweep_every
        self._calls = 0

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
        self._tick(now)
        if rid in self._holds:
            return ReserveResult(True)
        # Unrolled over the three units: this runs twice per request (with settle).
        want = (amounts.requests, amounts.tokens, amounts.pico)
        table = self._windows
        exceeded: list[Exceeded] = []
        for spec in windows:
            lim = spec.limits
            limits = (lim.requests, lim.tokens, lim.pico)
            if limits == _UNLIMITED:
                continue
            window = table.get(spec.key)
            have = window.used if window is not None else _ZERO
            for i in 0, 1, 2:
                limit = limits[i]
                if limit is not None and (
                    have[i] + want[i] > limit or (not want[i] and have[i] >= limit)
                ):
                    exceeded.append(
                        Exceeded(spec.key, _UNITS[i], have[i], want[i], limit, spec.enforce)
                    )
        if exceeded and any(e.enforce for e in exceeded):
            return ReserveResult(False, tuple(e for e in exceeded if e.enforce))
        r, t, p = want
        used: dict[str, Amounts] = {}
        for spec in windows:
            window = table.get(spec.key)
            if window is None:
                window = table[spec.key] = _Window(spec.expires_at)
            elif spec.expires_at > window.expires_at:
                window.expires_at = spec.expires_at
            u = window.used
            u[0] += r
            u[1] += t
            u[2] += p
            used[spec.key] = Amounts(u[0], u[1], u[2])
        self._holds[rid] = _Hold(tuple([spec.key for spec in windows]), amounts, now + ttl)
        return ReserveResult(True, tuple(exceeded), used)

    async def settle(self, rid: str, actual: Amounts, *, now: float) -> SettleResult | None:
        self._tick(now)
        hold = self._holds.pop(rid, None)
        if hold is None:
            return None
        held = hold.amounts
        got_r, got_t, got_p = actual.requests, actual.tokens, actual.pico
        dr, dt, dp = got_r - held.requests, got_t - held.tokens, got_p - held.pico
        table = self._windows
        settled: dict[str, Amounts] = {}
        for key in hold.keys:
            window = table.get(key)
            if window is None:  # expired before the settle arrived
                continue
            u, s = window.used, window.settled
            u[0] += dr
            u[1] += dt
            u[2] += dp
            s[0] += got_r
            s[1] += got_t
            s[2] += got_p
            settled[key] = Amounts(s[0], s[1], s[2])
        return SettleResult(settled, held)

    async def release(self, rid: str, *, now: float) -> bool:
        self._tick(now)
        hold = self._holds.pop(rid, None)
        if hold is None:
            return False
        held = _triple(hold.amounts)
        for key in hold.keys:
            window = self._windows.get(key)
            if window is not None:
                for i in range(3):
                    window.used[i] -= held[i]
        return True

    async def usage(self, keys: Sequence[str], *, now: float) -> dict[str, WindowUsage]:
        out: dict[str, WindowUsage] = {}
        for key in keys:
            window = self._windows.get(key)
            if window is not None and window.expires_at > now:
                out[key] = WindowUsage(Amounts(*window.used), Amounts(*window.settled))
            else:
                out[key] = WindowUsage()
        return out

    async def record(self, items: Iterable[tuple[WindowSpec, Amounts]], *, now: float) -> None:
        for spec, amounts in items:
            window = self._window(spec)
            for i, value in enumerate(_triple(amounts)):
                window.used[i] += value
                window.settled[i] += value

    def _window(self, spec: WindowSpec) -> _Window:
        window = self._windows.get(spec.key)
        if window is None:
            window = self._windows[spec.key] = _Window(spec.expires_at)
        elif spec.expires_at > window.expires_at:
            window.expires_at = spec.expires_at
        return window

    # -- rate limits ----------------------------------------------------------------

    def _level(self, bucket: Bucket, now: float) -> float:
        state = self._buckets.get(bucket.key)
        if state is None:
            return float(bucket.capacity)
        level, at, _ = state
        refill = max(0.0, now - at) * bucket.per_minute / 60.0
        return min(float(bucket.capacity), level + refill)

    def _store(self, bucket: Bucket, level: float, now: float) -> BucketState:
        rate = bucket.per_minute / 60.0
        reset = max(0.0, (bucket.capacity - level) / rate)
        self._buckets[bucket.key] = (level, now, now + reset)
        return BucketState(bucket.key, bucket.capacity, max(0, int(level)), reset)

    async def take(self, buckets: Sequence[Bucket], *, now: float) -> RateResult:
        self._tick(now)
        # `_level` and `_store` inlined (this runs on every request), same arithmetic.
        table = self._buckets
        levels = []
        ok = True
        for b in buckets:
            held = table.get(b.key)
            if held is None:
                level = float(b.capacity)
            else:
                level, at, _ = held
                level = min(float(b.capacity), level + max(0.0, now - at) * b.per_minute / 60.0)
            levels.append(level)
            if b.enforce and not level >= min(b.cost, b.capacity):
                ok = False
        states = []
        for bucket, level in zip(buckets, levels, strict=True):
            capacity = bucket.capacity
            rate = bucket.per_minute / 60.0
            need = min(bucket.cost, capacity)
            fit = level >= need
            if ok and fit:
                level -= bucket.cost
                reset = max(0.0, (capacity - level) / rate)
                table[bucket.key] = (level, now, now + reset)
                states.append(BucketState(bucket.key, capacity, max(0, int(level)), reset))
                continue
            retry = 0.0 if fit else (need - level) / rate
            reset = max(0.0, (capacity - level) / rate)
            states.append(BucketState(bucket.key, capacity, max(0, int(level)), reset, retry, fit))
        return RateResult(ok, tuple(states))

    async def adjust(self, bucket: Bucket, delta: int, *, now: float) -> None:
        self._store(bucket, min(float(bucket.capacity), self._level(bucket, now) - delta), now)

    # -- concurrency ----------------------------------------------------------------

    async def acquire_slot(
        self, key: str, holder: str, limit: int, *, now: float, ttl: float
    ) -> SlotResult:
        self._tick(now)
        holders = self._slots.setdefault(key, {})
        for name in [h for h, exp in holders.items() if exp <= now]:
            del holders[name]
        if holder in holders or len(holders) < limit:
            holders[holder] = now + ttl
            return SlotResult(True, len(holders), limit)
        return SlotResult(False, len(holders), limit)

    async def release_slot(self, key: str, holder: str) -> bool:
        holders = self._slots.get(key)
        if not holders or holder not in holders:
            return False
        del holders[holder]
        if not holders:
            del self._slots[key]
        return True

    # -- housekeeping ---------------------------------------------------------------

    def _tick(self, now: float) -> None:
        self._calls += 1
        if self._calls >= self._sweep_every:
            self.sweep(now)

    def sweep(self, now: float) -> None:
        for table in (self._windows, self._holds):
            for key in [k for k, v in table.items() if v.expires_at <= now]:
                del table[key]
        for key in [k for k, (_, _, full) in self._buckets.items() if full <= now]:
            del self._buckets[key]
        for key, holders in list(self._slots.items()):
            for name in [h for h, exp in holders.items() if exp <= now]:
                del holders[name]
            if not holders:
                del self._slots[key]
        self._calls = 0
        self._sweep_every = max(self._min_sweep, self.size())

    def size(self) -> int:
        return len(self._windows) + len(self._holds) + len(self._buckets) + len(self._slots)

    async def close(self) -> None:
        return None
