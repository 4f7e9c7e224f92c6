"""`FailoverCounters`: what the gateway does while a shared counters backend is down.

Wraps a backend that can fail (Redis) and implements the same protocol, so the
governor never knows. When a call raises `CountersUnavailable` the outage starts: it
is logged once, loudly, and a probe pings the backend every `probe_interval` until
it answers; then shared counting resumes by itself (and the audit seed is replayed if
Redis came back empty: see `reseed`). During an outage:

- `closed` (default): admission calls (`take`, `acquire_slot`, `reserve`) raise
  `GatewayError(503, "counters_unavailable")`; the pipeline answers and audits it.
- `open`: admission runs against per-process `MemoryCounters` (seeded with this
  process's start-up seed), so each gateway enforces its own copy of every limit.
  Reservations and slots taken there are settled there, even after recovery.

Settlement calls (`settle`, `release`, `adjust`, `release_slot`) never raise for an
outage: a reservation that cannot be settled keeps its worst case charged until its
TTL, the same conservative outcome as a crashed gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal

from agentctl.counters.base import (
    Amounts,
    Bucket,
    Counters,
    RateResult,
    ReserveResult,
    SettleResult,
    SlotResult,
    WindowSpec,
    WindowUsage,
)
from agentctl.errors import GatewayError

log = logging.getLogger("agentctl.counters")


class CountersUnavailable(Exception):
    """The shared counters backend could not be reached (connection refused, timeout)."""


class FailoverCounters:
    def __init__(
        self,
        primary: Any,
        *,
        on_failure: Literal["closed", "open"] = "closed",
        probe_interval: float = 0.5,
        label: str = "Redis",
    ) -> None:
        self.primary = primary
        self.on_failure = on_failure
        self.probe_interval = probe_interval
        self.label = label
        self.down_since: float | None = None
        self.outages = 0
        self.reseed: Callable[[], Awaitable[object]] | None = None
        self._fallback: Counters | None = None
        self._seed: list[tuple[WindowSpec, Amounts]] = []
        self._local_holds: set[str] = set()
        self._local_slots: set[tuple[str, str]] = set()
        self._probe: asyncio.Task[None] | None = None
        self._last_check = 0.0

    @property
    def healthy(self) -> bool:
        return self.down_since is None

    # -- outage bookkeeping ------------------------------------------------------

    def _down(self, exc: Exception) -> None:
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.outages += 1
        if self.on_failure == "closed":
            what = "refusing requests with 503 counters_unavailable (counters.on_failure: closed)"
        else:
            what = (
                "serving with PER-PROCESS memory limits (counters.on_failure: open): every "
                "gateway process now enforces its own copy of each limit"
            )
        log.error(
            "counters backend %s is unreachable (%s); %s until it returns", self.label, exc, what
        )
        self._probe = asyncio.get_running_loop().create_task(self._wait_for_primary())

    async def _wait_for_primary(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self.primary.ping()
            except Exception as exc:  # still down (or worse): keep probing
                log.debug("counters probe failed: %s", exc)
                continue
            break
        assert self.down_since is not None
        log.warning(
            "counters backend %s is back after %.1fs; shared limits are enforced again",
            self.label,
            time.monotonic() - self.down_since,
        )
        self.down_since = None
        await self.maintain(force=True)

    async def maintain(self, *, force: bool = False, every: float = 2.0) -> None:
        """Re-run the audit seed if the backend lost its data (called from the change
        watcher and after an outage; at most every `every` seconds)."""
        now = time.monotonic()
        if (
            self.reseed is None
            or not self.healthy
            or (not force and now - self._last_check < every)
        ):
            return
        self._last_check = now
        try:
            if not await self.primary.seeded():
                log.warning(
                    "counters backend %s has no state; seeding it from the audit log", self.label
                )
                await self.reseed()
        except CountersUnavailable as exc:
            self._down(exc)
        except Exception:
            log.exception("re-seeding the counters backend failed; will retry")

    async def _local(self) -> Counters:
        if self._fallback is None:
            from agentctl.counters.memory import MemoryCounters

            self._fallback = MemoryCounters()
            await self._fallback.record(self._seed, now=time.time())
        return self._fallback

    def _refuse(self) -> GatewayError:
        return GatewayError(
            503,
            "counters_unavailable",
            f"the gateway cannot reach its shared counters ({self.label}), so it cannot check "
            "rate limits and budgets; requests are refused until it is back "
            "(operators: see counters.on_failure in docs/deployment.md)",
            headers={"retry-after": "1"},
        )

    async def _admit(self, name: str, *args: Any, **kw: Any) -> tuple[Any, bool]:
        """(result, taken locally): locally taken holds and slots are settled locally."""
        if self.healthy:
            try:
                return await getattr(self.primary, name)(*args, **kw), False
            except CountersUnavailable as exc:
                self._down(exc)
        if self.on_failure == "closed":
            raise self._refuse()
        return await getattr(await self._local(), name)(*args, **kw), True

    async def _settle(self, name: str, default: Any, *args: Any, **kw: Any) -> Any:
        if self.healthy:
            try:
                return await getattr(self.primary, name)(*args, **kw)
            except CountersUnavailable as exc:
                self._down(exc)
        return default

    # -- the protocol ------------------------------------------------------------

    async def reserve(
        self, rid: str, windows: Sequence[WindowSpec], amounts: Amounts, *, now: float, ttl: float
    ) -> ReserveResult:
        result, local = await self._admit("reserve", rid, windows, amounts, now=now, ttl=ttl)
        if local and result.ok:
            self._local_holds.add(rid)
        assert isinstance(result, ReserveResult)
        return result

    async def settle(self, rid: str, actual: Amounts, *, now: float) -> SettleResult | None:
        if rid in self._local_holds:
            self._local_holds.discard(rid)
            return await (await self._local()).settle(rid, actual, now=now)
        result: SettleResult | None = await self._settle("settle", None, rid, actual, now=now)
        return result

    async def release(self, rid: str, *, now: float) -> bool:
        if rid in self._local_holds:
            self._local_holds.discard(rid)
            return await (await self._local()).release(rid, now=now)
        return bool(await self._settle("release", False, rid, now=now))

    async def take(self, buckets: Sequence[Bucket], *, now: float) -> RateResult:
        result, _ = await self._admit("take", buckets, now=now)
        assert isinstance(result, RateResult)
        return result

    async def adjust(self, bucket: Bucket, delta: int, *, now: float) -> None:
        if self.healthy:
            await self._settle("adjust", None, bucket, delta, now=now)
        elif self.on_failure == "open":
            await (await self._local()).adjust(bucket, delta, now=now)

    async def acquire_slot(
        self, key: str, holder: str, limit: int, *, now: float, ttl: float
    ) -> SlotResult:
        result, local = await self._admit("acquire_slot", key, holder, limit, now=now, ttl=ttl)
        if local and result.ok:
            self._local_slots.add((key, holder))
        assert isinstance(result, SlotResult)
        return result

    async def release_slot(self, key: str, holder: str) -> bool:
        if (key, holder) in self._local_slots:
            self._local_slots.discard((key, holder))
            return await (await self._local()).release_slot(key, holder)
        return bool(await self._settle("release_slot", False, key, holder))

    async def usage(self, keys: Sequence[str], *, now: float) -> dict[str, WindowUsage]:
        if self.healthy:
            try:
                result: dict[str, WindowUsage] = await self.primary.usage(keys, now=now)
                return result
            except CountersUnavailable as exc:
                self._down(exc)
        if self._fallback is not None:
            return await self._fallback.usage(keys, now=now)
        return {key: WindowUsage() for key in keys}

    async def record(self, items: Iterable[tuple[WindowSpec, Amounts]], *, now: float) -> None:
        self._seed = list(items)
        if self.healthy:
            try:
                await self.primary.record(self._seed, now=now)
            except CountersUnavailable as exc:
                self._down(exc)  # seeded after recovery, if the backend has no state

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.primary.close()


def guard(counters: Counters, *, on_failure: Literal["closed", "open"]) -> Counters:
    """Wrap backends that can fail; `memory://` cannot and is returned as it is."""
    if not hasattr(counters, "ping"):
        return counters
    return FailoverCounters(counters, on_failure=on_failure)
