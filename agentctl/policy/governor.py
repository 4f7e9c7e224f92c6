"""The `Governor`: the one object the request pipeline asks "may this go ahead?".

`admit` runs, in order: model access, per-request caps, rate limits (rpm/tpm token
buckets), concurrency, then one all-or-nothing reservation of the worst case against
every window that applies (see `plan`). The agent's status (disabled, quarantined)
is the caller's check, before `admit`. `settle` (or `release` when the upstream was
never reached) runs on every exit path and is idempotent.

- A later step's refusal does not give back rate tokens already taken (a refused
  request still counts against rpm, as upstream providers do); it does free the
  concurrency slot.
- Shadow rules are evaluated like enforced ones; a would-be refusal is recorded on
  `Admission.shadow` and the request goes on (a shadow bucket or slot that would
  refuse is not drawn from, so it simulates enforcement faithfully; shadow budget
  windows still count the real spend).
- `rate_multiplier` (trust tier) scales rpm, tpm, bursts and concurrency; budgets,
  per-request caps and breakers never scale.
- The tpm bucket is charged the estimate at admission and corrected to the actual
  tokens at settle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from agentctl.counters.base import Amounts, Bucket, BucketState, Counters, WindowSpec
from agentctl.errors import Refusal
from agentctl.facts import RequestFacts
from agentctl.identity import Identity
from agentctl.ids import random_hex
from agentctl.policy import refusals
from agentctl.policy.admission import (
    Admission,
    BreakerTrip,
    ShadowHit,
    WindowRef,
    ratelimit_headers,
)
from agentctl.policy.breaker import breaker_trips
from agentctl.policy.loader import PolicySet
from agentctl.policy.plan import (
    cap_refusals,
    enforced,
    estimate,
    rate_buckets,
    window_refs,
    worst_case_hint,
)
from agentctl.policy.resolve import EffectivePolicy, effective
from agentctl.policy.windows import WindowClock

HOLD_TTL = 3600.0  # a reservation never settled is dropped (its amount stays charged)
SLOT_TTL = 900.0  # a concurrency slot never released frees itself after this
REFS_CACHE = 10_000  # identities whose current windows are kept ready


def _hit(refusal: Refusal) -> ShadowHit:
    return ShadowHit(refusal.rule_id, refusal.status, refusal.message)


def _ref(refs: tuple[WindowRef, ...], key: str) -> WindowRef:
    """The window a counter names (only on a refusal or shadow hit: no map per request)."""
    return {r.spec.key: r for r in refs}[key]


class Governor:
    def __init__(
        self,
        policy: PolicySet,
        counters: Counters,
        *,
        clock: Callable[[], float] = time.time,
        hold_ttl: float = HOLD_TTL,
        slot_ttl: float = SLOT_TTL,
        new_id: Callable[[], str] = lambda: random_hex(16),  # no system call per id
    ) -> None:
        self.policy = policy
        self.counters = counters
        self.clock = clock
        self.hold_ttl = hold_ttl
        self.slot_ttl = slot_ttl
        self._new_id = new_id
        self._windows = WindowClock()
        self._refs: dict[int, tuple[EffectivePolicy, float, float, tuple[WindowRef, ...]]] = {}

    def apply(self, policy: PolicySet) -> None:
        """Switch to a new policy version (its resolution cache starts empty)."""
        self.policy = policy
        self._refs.clear()

    def effective(self, identity: Identity) -> EffectivePolicy:
        return effective(self.policy, identity)

    def model_allowed(self, identity: Identity, model: str) -> bool:
        """For `GET /v1/models`: only what this caller may use."""
        return self.effective(identity).access.check(model) is None

    def ratelimit_headers(self, admission: Admission) -> dict[str, str]:
        return ratelimit_headers(admission)

    def window_refs(self, policy: EffectivePolicy, now: float) -> tuple[WindowRef, ...]:
        """The windows `policy` draws on at `now`, reused until one of them ends."""
        cached = self._refs.get(id(policy))
        if cached is not None and cached[0] is policy and cached[1] <= now < cached[2]:
            return cached[3]
        refs = window_refs(policy, now, self._windows, self.hold_ttl)
        if len(self._refs) >= REFS_CACHE:
            self._refs.clear()
        start = max(r.window.start for r in refs)
        end = min(r.window.end for r in refs)
        self._refs[id(policy)] = (policy, start, end, refs)
        return refs

    async def admit(
        self,
        identity: Identity,
        facts: RequestFacts,
        *,
        price_in_pico_per_token: int,
        price_out_pico_per_token: int,
        now: float | None = None,
        rate_multiplier: float = 1.0,
        upstream_model: str | None = None,
    ) -> Admission:
        if not rate_multiplier > 0:
            raise ValueError("rate_multiplier must be positive")
        now = self.clock() if now is None else now
        pol = self.effective(identity)
        shadow: list[ShadowHit] = []

        def deny(block: Any, refusal: Refusal) -> None:
            if enforced(block):
                raise refusal
            shadow.append(_hit(refusal))

        verdict = pol.access.check(facts.model, upstream_model)
        if verdict is not None:
            path, why = f"models.{verdict[0]}", verdict[1]
            deny(pol.rules.models, refusals.not_allowed(refusals.MODEL_NOT_ALLOWED, pol, path, why))
        est = estimate(pol, facts, price_in_pico_per_token, price_out_pico_per_token)
        for refusal in cap_refusals(pol, facts, est.amounts.pico):
            deny(pol.rules.request, refusal)

        rid = self._new_id()
        charged, states = await self._take_rate(
            pol, est.amounts.tokens, rate_multiplier, now, shadow
        )
        slot = None
        try:
            slot = await self._take_slot(pol, rid, rate_multiplier, now, deny)
            refs = self.window_refs(pol, now)
            specs = [r.spec for r in refs]
            result = await self.counters.reserve(
                rid, specs, est.amounts, now=now, ttl=self.hold_ttl
            )
            if not result.ok:
                first = result.exceeded[0]
                hint = worst_case_hint(facts, est.output_tokens)
                raise refusals.budget(pol, _ref(refs, first.key), first, now, hint=hint)
        except BaseException:
            # Refused after the rate step (concurrency, budget) or failed: the request
            # holds nothing, so its requests and tokens go back to the rate buckets.
            if slot is not None:
                await self.counters.release_slot(slot, rid)
            for bucket in charged:
                await self.counters.adjust(bucket, -bucket.cost, now=now)
            raise
        shadow += [_hit(refusals.budget(pol, _ref(refs, e.key), e, now)) for e in result.exceeded]
        return Admission(
            identity=identity,
            policy=pol,
            reservation_id=rid,
            lane=pol.lane,
            model=facts.model,
            estimate=est.amounts,
            output_tokens=est.output_tokens,
            admitted_at=now,
            windows=refs,
            used=result.used,
            charged=charged,
            rate=states,
            slot=slot,
            shadow=tuple(shadow),
        )

    async def _take_rate(
        self, pol: EffectivePolicy, tokens: int, mult: float, now: float, shadow: list[ShadowHit]
    ) -> tuple[tuple[Bucket, ...], tuple[tuple[str, BucketState], ...]]:
        kinds = rate_buckets(pol, tokens, mult)
        if not kinds:
            return (), ()
        result = await self.counters.take([b for _, _, b in kinds], now=now)
        pairs = list(zip(kinds, result.buckets, strict=True))
        for (kind, limit, bucket), state in pairs:
            if not state.allowed:
                refusal = refusals.rate(
                    pol, kind, limit, bucket.capacity, state.retry_after, multiplier=mult
                )
                if bucket.enforce:
                    raise refusal
                shadow.append(_hit(refusal))
        charged = tuple(bucket for (_, _, bucket), state in pairs if state.allowed)
        return charged, tuple((kind, state) for (kind, _, _), state in pairs)

    async def _take_slot(
        self,
        pol: EffectivePolicy,
        rid: str,
        mult: float,
        now: float,
        deny: Callable[[Any, Refusal], None],
    ) -> str | None:
        conc = pol.rules.concurrency
        if conc is None:
            return None
        key = f"c|{pol.name}"
        limit = max(1, int(conc.max * mult))
        got = await self.counters.acquire_slot(key, rid, limit, now=now, ttl=self.slot_ttl)
        if got.ok:
            return key
        deny(conc, refusals.concurrency(pol, got.in_use, limit))
        return None

    async def settle(
        self, admission: Admission, *, total_tokens: int, cost_pico: int, now: float | None = None
    ) -> list[BreakerTrip]:
        """Settle to the actual figures (idempotent) and return any breaker crossed."""
        if admission.settled:
            return []
        admission.settled = True
        now = self.clock() if now is None else now
        actual = Amounts(1, total_tokens, cost_pico)
        result = await self.counters.settle(admission.reservation_id, actual, now=now)
        await self._finish(admission, total_tokens - admission.estimate.tokens, now)
        return [] if result is None else breaker_trips(admission, result.settled, cost_pico)

    async def release(self, admission: Admission, *, now: float | None = None) -> None:
        """The request never reached the upstream: undo its reservation entirely."""
        if admission.settled:
            return
        admission.settled = True
        now = self.clock() if now is None else now
        await self.counters.release(admission.reservation_id, now=now)
        await self._finish(admission, -admission.estimate.tokens, now)

    async def _finish(self, admission: Admission, token_delta: int, now: float) -> None:
        if admission.slot is not None:
            await self.counters.release_slot(admission.slot, admission.reservation_id)
        for bucket in admission.charged:
            if bucket.key.startswith("r|tpm|") and token_delta:
                await self.counters.adjust(bucket, token_delta, now=now)

    async def seed(self, rows: Iterable[Any], *, now: float | None = None) -> int:
        """Rebuild the current windows from audit rows at start; returns the rows used.

        Each row has ts (epoch seconds or aware datetime), agent, owner, total_tokens,
        cost_pico, counted_request (or `requests`, a count, for pre-aggregated rows),
        and optionally purpose and verification ("token" when absent). Rows outside
        every current window are ignored."""
        now = self.clock() if now is None else now
        totals: dict[str, tuple[WindowSpec, Amounts]] = {}
        # Local, not `self._refs`: 10,000 identities' refs would outlive the seed (~20 MB).
        refs_of: dict[Identity, tuple[WindowRef, ...]] = {}
        used = 0
        for row in rows:
            ts = row.ts.timestamp() if isinstance(row.ts, datetime) else float(row.ts)
            purpose = getattr(row, "purpose", "") or ""
            verification = getattr(row, "verification", "token") or "token"
            identity = Identity(row.agent, row.owner, purpose, verification=verification)
            count = getattr(row, "requests", None)
            if count is None:
                count = 1 if row.counted_request else 0
            amounts = Amounts(count, row.total_tokens, row.cost_pico)
            refs = refs_of.get(identity)
            if refs is None:
                pol = self.effective(identity)
                refs = refs_of[identity] = window_refs(pol, now, self._windows, self.hold_ttl)
            hits = [r for r in refs if r.window.contains(ts)]
            for ref in hits:
                spec, total = totals.get(ref.spec.key, (ref.spec, Amounts()))
                totals[ref.spec.key] = (spec, total + amounts)
            used += bool(hits)
        await self.counters.record(totals.values(), now=now)
        return used
