"""The `Counters` protocol: hot state for budgets, rate limits and concurrency.

Every method is one atomic step, shaped so a Redis backend can implement each call
as ONE Lua script (all keys passed in, no read-then-write round trips), and the
memory backend implements it with no `await` between check and commit. Keys are
opaque strings built by the governor (they embed subject, period, zone and window
id); backends may prefix them. Time is passed in (`now`, epoch seconds) rather than
read by the backend, so tests inject a clock and all instances share one notion of
"which window".

Units: `Amounts(requests, tokens, pico)`; money is integer pico-dollars (1e-12 USD),
so Redis `HINCRBY` stays exact. A window holds two triples: `used` (settled usage
plus outstanding reservations: what admission checks) and `settled` (actual usage
only: what reports, headers and the cost breaker read).

- `reserve` is all-or-nothing over every window passed: if any *enforced* window
  would go over a limit (used + amount > limit, or an amount of 0 against a window
  already at its limit: an exhausted budget refuses even a request whose price is
  unknown) nothing is recorded; shadow windows never block but their would-be
  violations are returned.
- `settle` replaces a reservation by the actual amounts; it never refuses (it
  records truth, and may exceed a limit). Settling or releasing an unknown or
  already-settled reservation id is a no-op returning None/False: idempotent.
- Rate limits are token buckets (refill `per_minute / 60` per second up to
  `capacity`). A bucket admits a request when its level covers min(cost,
  capacity), then subtracts the full cost, so a request larger than the bucket
  still gets through once the bucket is full and then pays its debt in waiting.
- Concurrency slots are held per holder id with a TTL, so a crashed gateway
  cannot leak them for longer than the TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

UNITS = ("requests", "tokens", "pico")


@dataclass(frozen=True, slots=True)
class Amounts:
    requests: int = 0
    tokens: int = 0
    pico: int = 0

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.requests + other.requests, self.tokens + other.tokens, self.pico + other.pico
        )

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.requests - other.requests, self.tokens - other.tokens, self.pico - other.pico
        )

    def get(self, unit: str) -> int:
        return int(getattr(self, unit))


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-unit limits of one window; None means unlimited in that unit."""

    requests: int | None = None
    tokens: int | None = None
    pico: int | None = None

    def get(self, unit: str) -> int | None:
        value: int | None = getattr(self, unit)
        return value


@dataclass(frozen=True, slots=True)
class WindowSpec:
    key: str
    limits: Limits
    expires_at: float  # epoch seconds after which the window may be dropped
    enforce: bool = True


@dataclass(frozen=True, slots=True)
class WindowUsage:
    used: Amounts = Amounts()
    settled: Amounts = Amounts()


@dataclass(frozen=True, slots=True)
class Exceeded:
    key: str
    unit: str  # "requests" | "tokens" | "pico"
    used: int  # before this reservation
    requested: int
    limit: int
    enforce: bool


@dataclass(frozen=True, slots=True)
class ReserveResult:
    ok: bool
    # not ok: the enforced violations (nothing was recorded); ok: shadow violations
    exceeded: tuple[Exceeded, ...] = ()
    used: dict[str, Amounts] = field(default_factory=dict)  # ok: `used` after this reservation


@dataclass(frozen=True, slots=True)
class SettleResult:
    settled: dict[str, Amounts]  # window key -> settled totals after this settle
    reserved: Amounts  # what the reservation had held


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    per_minute: float  # refill rate
    capacity: int
    cost: int
    enforce: bool = True


@dataclass(frozen=True, slots=True)
class BucketState:
    key: str
    capacity: int
    remaining: int  # whole units available after this call
    reset_after: float  # seconds until the bucket is full again
    retry_after: float = 0.0  # seconds until this call's cost would fit (0 when it did)
    allowed: bool = True


@dataclass(frozen=True, slots=True)
class RateResult:
    ok: bool  # False: some enforced bucket refused and nothing was taken
    buckets: tuple[BucketState, ...]

    @property
    def retry_after(self) -> float:
        return max((b.retry_after for b in self.buckets if not b.allowed), default=0.0)


@dataclass(frozen=True, slots=True)
class SlotResult:
    ok: bool
    in_use: int  # holders after this call (including this one when ok)
    limit: int


@runtime_checkable
class Counters(Protocol):
    async def reserve(
        self,
        rid: str,
        windows: Sequence[WindowSpec],
        amounts: Amounts,
        *,
        now: float,
        ttl: float,
    ) -> ReserveResult: ...

    async def settle(self, rid: str, actual: Amounts, *, now: float) -> SettleResult | None: ...

    async def release(self, rid: str, *, now: float) -> bool: ...

    async def take(self, buckets: Sequence[Bucket], *, now: float) -> RateResult: ...

    async def adjust(self, bucket: Bucket, delta: int, *, now: float) -> None:
        """Charge (delta > 0) or refund (delta < 0) a bucket; never refuses."""
        ...

    async def acquire_slot(
        self, key: str, holder: str, limit: int, *, now: float, ttl: float
    ) -> SlotResult: ...

    async def release_slot(self, key: str, holder: str) -> bool: ...

    async def usage(self, keys: Sequence[str], *, now: float) -> dict[str, WindowUsage]: ...

    async def record(self, items: Iterable[tuple[WindowSpec, Amounts]], *, now: float) -> None:
        """Add amounts to `used` and `settled` without checks (seeding at start)."""
        ...

    async def close(self) -> None: ...
