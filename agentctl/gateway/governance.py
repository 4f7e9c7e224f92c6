"""The gateway side of policy: the version in force, quota state across restarts,
admission and settlement for the pipeline, and the cost breaker's latch.

- The policy in force is the latest row of the store's apply log; gateways pick up a
  new version within one poll interval (`policy_poll_ms`).
- At start, quota windows are rebuilt from the audit records of the current windows,
  summed in SQL per agent and per segment between window edges (`window_edges`): a
  million records cost one aggregate query and a few rows per agent, not a row each.
- Settlement runs after the response is complete and never raises: budget state must
  not turn a served request into an error.
- A breaker trip latches the agent `disabled` in the store (so every gateway refuses
  it), in the local directory at once (so the next request here is refused without
  waiting for a poll), as an audit event, a log line and an optional webhook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace

import aiohttp

from agentctl.config import Settings
from agentctl.counters import Counters
from agentctl.errors import GatewayError
from agentctl.gateway.call import Call
from agentctl.gateway.directory import Directory
from agentctl.gateway.routing import Route
from agentctl.policy import BreakerTrip, Governor, PolicySet, empty_policy, from_mapping, refusals
from agentctl.policy.plan import usd_limit
from agentctl.policy.resolve import policy_zones
from agentctl.policy.windows import window_edges
from agentctl.pricing import Pricer
from agentctl.store.sql import Store

log = logging.getLogger("agentctl.policy")
BREAKER_ACTOR = "agentctl-breaker"


def load_active(store: Store) -> PolicySet:
    row = store.active_policy()
    if row is None:
        return empty_policy()
    return from_mapping(json.loads(row.document), source=f"policy {row.version[:12]}")


def usage_seeds(store: Store, policy: PolicySet, now: float) -> list[SimpleNamespace]:
    """What `Governor.seed` needs to rebuild every window current at `now`: usage summed
    per identity between consecutive window edges, in every zone `policy` uses."""
    edges = window_edges(now, policy_zones(policy))
    return [
        SimpleNamespace(
            ts=r["ts_us"] / 1e6,
            agent=r["agent"],
            owner=r["owner"],
            purpose=r["purpose"],
            verification=r["verification"] or "unverified",
            requests=int(r["requests"]),
            total_tokens=int(r["tokens"]),
            cost_pico=int(r["pico"]),
        )
        for r in store.usage_segments([round(e * 1e6) for e in edges])
    ]


class Governance:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        directory: Directory,
        counters: Counters,
        pricer: Pricer,
    ) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.counters = counters
        self.pricer = pricer
        self.governor = Governor(empty_policy(), counters)
        self.session: aiohttp.ClientSession | None = None
        self.on_trip: Callable[[BreakerTrip, str], None] | None = None  # trust hears of it
        self._tasks: set[asyncio.Task[None]] = set()
        self._aliases: dict[str, dict[str, str]] = {}  # policy version -> folded aliases

    @property
    def version(self) -> str:
        return self.governor.policy.version

    def alias_target(self, model: str) -> str | None:
        """The concrete model a policy alias (`aliases: {fast: gpt-4o-mini}`) names, so
        the upstream is sent (and the call priced as) the real model. Glob targets only
        widen allow/deny matching and rename nothing."""
        policy = self.governor.policy
        folded = self._aliases.get(policy.version)
        if folded is None:
            folded = {
                k.strip().casefold(): v.strip()
                for k, v in policy.document.aliases.items()
                if not any(ch in v for ch in "*?[")
            }
            self._aliases = {policy.version: folded}
        return folded.get(model.casefold()) if folded else None

    async def start(self) -> None:
        policy = await asyncio.to_thread(load_active, self.store)
        self.governor.apply(policy)
        await self.seed()

    async def seed(self) -> int:
        now = time.time()
        seeds = await asyncio.to_thread(usage_seeds, self.store, self.governor.policy, now)
        return await self.governor.seed(seeds, now=now)

    async def reload(self) -> bool:
        row = await asyncio.to_thread(self.store.active_policy)
        version = row.version if row is not None else empty_policy().version
        if version == self.version:
            return False
        policy = empty_policy() if row is None else from_mapping(json.loads(row.document))
        self.governor.apply(policy)
        log.info("policy %s is now in force", version[:12])
        return True

    async def admit(self, call: Call, route: Route, *, rate_multiplier: float = 1.0) -> None:
        assert call.identity is not None and call.facts is not None
        prices = self.pricer.unit_prices_pico(route.model, route.upstream.provider)
        if prices is None:
            if self.settings.pricing.unknown_model == "refuse":
                raise GatewayError(
                    400,
                    "model_unpriced",
                    f"model {route.model!r} has no price and pricing.unknown_model is 'refuse'; "
                    "add it under pricing.overrides",
                    param="model",
                )
            # Served unpriced, the request would cost $0 to every USD limit: an agent
            # under one could spend without bound on any model genai-prices lacks.
            pol = self.governor.effective(call.identity)
            limited = usd_limit(pol)
            if limited is not None:
                raise refusals.unpriced_under_usd(pol, route.model, limited)
            prices = (0, 0)
        admission = await self.governor.admit(
            call.identity,
            call.facts,
            price_in_pico_per_token=prices[0],
            price_out_pico_per_token=prices[1],
            upstream_model=route.model,
            rate_multiplier=rate_multiplier,
        )
        call.admission = admission
        call.reserved_pico = admission.estimate.pico
        call.shadow_rules = admission.shadow_rule_ids
        call.extra_headers.update(self.governor.ratelimit_headers(admission))

    async def settle(self, call: Call) -> None:
        admission = call.admission
        if admission is None:
            return
        try:
            if not call.forwarded:
                await self.governor.release(admission)
                return
            usage = call.usage
            trips = await self.governor.settle(
                admission,
                total_tokens=usage.total_tokens if usage is not None else 0,
                cost_pico=call.cost_pico or 0,
            )
        except Exception:
            log.exception("settling %s failed; its reservation expires by TTL", call.request_id)
            return
        for trip in trips:
            self._latch(trip, call.request_id)
            if self.on_trip is not None:
                self.on_trip(trip, call.request_id)

    def _latch(self, trip: BreakerTrip, request_id: str) -> None:
        log.warning("%s (request %s)", trip.message, request_id)
        if not trip.enforced:
            return
        self.directory.disable_locally(trip.agent, trip.message, BREAKER_ACTOR)
        task = asyncio.create_task(self._persist_trip(trip, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _persist_trip(self, trip: BreakerTrip, request_id: str) -> None:
        evidence = {
            "rule_id": trip.rule_id,
            "window": trip.window_id,
            "spent_usd_pico": trip.spent_pico,
            "threshold_usd_pico": trip.threshold_pico,
            "scope": trip.scope,
            "request_id": request_id,
            "undo": f"agentctl agents enable {trip.agent} --reason '...'",
        }
        try:
            await asyncio.to_thread(
                self.store.set_status,
                trip.agent,
                "disabled",
                actor=BREAKER_ACTOR,
                reason=trip.message,
                owner=trip.owner,
                kind="breaker",
                detail=evidence,
            )
        except Exception:
            log.exception("could not persist the breaker latch for %s", trip.agent)
        if trip.webhook and self.session is not None:
            payload = {
                "event": "agent_disabled",
                "agent": trip.agent,
                "owner": trip.owner,
                "reason": trip.message,
                "at": datetime.now(UTC).isoformat(),
                **evidence,
            }
            try:
                async with asyncio.timeout(5):
                    async with self.session.post(trip.webhook, json=payload) as resp:
                        await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("breaker webhook %s failed: %s", trip.webhook, exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
