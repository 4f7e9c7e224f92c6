"""`Attempts`: the upstream slots one request holds, one at a time.

`start()` waits for the first slot in the request's lane (503 `upstream-saturated`
with `Retry-After` after `queue_timeout`); `fall_back(kind)` gives the failed slot back
and takes one on another member of the pool, while the client has not seen a byte,
the failure kind is in the pool's `fallback_on` and fewer than `max_attempts`
upstreams were tried. Fallbacks wait in the queue too, within what is left of the
request's `queue_timeout`; when none can be had, the client gets the last failure.

Each attempt is one entry of `Call.attempts` (the request's single audit record):
`upstream`, then `status` or `error`, plus `queued_ms` and `lane` when it waited for
its slot, `probe` when it was a half-open probe, `after_first_byte` when a stream
broke after the client had its first byte (never retried). `Call.upstream`,
`upstream_model` and `provider` follow the current attempt, so the request is priced
and charged once, for the attempt that answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from agentctl.errors import Refusal
from agentctl.gateway.call import Call
from agentctl.gateway.pools import ClientGone, NoUpstream, Pools, Saturated, Slot
from agentctl.gateway.routing import LANES, Plan, Route

QUEUED_GONE = "client disconnected while queued for an upstream slot"


class Attempts:
    def __init__(
        self,
        pools: Pools,
        plan: Plan,
        lane: str,
        call: Call,
        gone: Callable[[], bool] | None = None,
    ) -> None:
        self.pools = pools
        self.gone = gone  # has the client disconnected?
        self.plan = plan
        self.lane = lane
        self.call = call
        self.options = plan.pool.options
        self.tried: list[str] = []
        self.slot: Slot | None = None
        self.route: Route | None = None
        self.attempt: dict[str, Any] = {}
        self.verdict: bool | None = None  # the current attempt's health verdict
        self.deadline = 0.0

    def __enter__(self) -> Attempts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release(self.verdict)

    async def start(self) -> Route:
        self.deadline = time.monotonic() + self.options.queue_timeout
        try:
            slot = await self.pools.acquire(
                self.plan.pool, self.lane, timeout=self.options.queue_timeout, gone=self.gone
            )
        except Saturated as exc:
            raise self._saturated(exc) from None
        except ClientGone:
            # Seen by the queue's own poll: end as a cancelled handler would. The
            # pipeline records the request `disconnected` and settles its reservation.
            self.call.message = QUEUED_GONE
            raise asyncio.CancelledError(self.call.message) from None
        except asyncio.CancelledError:  # the handler was cancelled: the client hung up
            self.call.message = QUEUED_GONE
            raise
        except NoUpstream:
            raise Refusal(
                503,
                "lane-not-served",
                f"no upstream of pool {self.plan.pool.name!r} serves the {self.lane} lane; "
                "add the lane to an upstream's `lanes` in agentctl.yaml",
                should_retry=False,
            ) from None
        return self._begin(slot)

    def can_fall_back(self, kind: str) -> bool:
        if kind not in self.options.fallback_on or len(self.tried) >= self.options.max_attempts:
            return False
        return bool(self.pools.candidates(self.plan.pool, LANES.index(self.lane), self.tried))

    async def fall_back(self, kind: str) -> Route | None:
        """The current attempt failed (`kind`) before the client saw a byte: the next one."""
        self.release(False)
        if not self.can_fall_back(kind):
            return None
        try:
            slot = await self.pools.acquire(
                self.plan.pool,
                self.lane,
                exclude=self.tried,
                timeout=self.deadline - time.monotonic(),
                gone=self.gone,
            )
        except (Saturated, NoUpstream, ClientGone):
            return None
        return self._begin(slot)

    def release(self, ok: bool | None) -> None:
        if self.slot is not None:
            self.pools.release(self.slot, ok)
            self.slot = None

    def _begin(self, slot: Slot) -> Route:
        upstream = slot.member.upstream
        self.slot, self.verdict = slot, None
        self.tried.append(upstream.name)
        route = self.route = self.plan.route(upstream)
        attempt: dict[str, Any] = {"upstream": upstream.name}
        if slot.queued >= 0.0005:
            attempt["queued_ms"] = round(slot.queued * 1000, 3)
            attempt["lane"] = self.lane
        if slot.probe:
            attempt["probe"] = True
        self.attempt = attempt
        call = self.call
        call.attempts.append(attempt)
        call.upstream, call.upstream_model, call.provider = (
            upstream.name,
            route.model,
            upstream.provider,
        )
        return route

    def _saturated(self, exc: Saturated) -> Refusal:
        pool = self.plan.pool
        return Refusal(
            503,
            "upstream-saturated",
            f"every upstream of pool {pool.name!r} is at its concurrency limit for the "
            f"{self.lane} lane (waited {exc.waited:.1f}s of queue_timeout "
            f"{self.options.queue_timeout:g}s); retry later",
            retry_after=exc.retry_after,
        )
