"""`TrustEngine`: the in-process trust API the gateway calls around every request.

Order per request (all O(1), no I/O, no locks: the gateway runs one event loop):

1. `before_request(agent, facts, now, identity=, source=)` closes any finished hour,
   expires a pin, counts the arrival in the request-rate, loop and source detectors
   (refused requests included, so hammering stays visible), acts on their signals and
   returns a `Gate`: tier, multiplier and lane for the static limits, and a refusal
   when quarantined, when the prompt is the one looping, when contained beyond the
   containment buckets, or beyond the tier's own limit derived from the agent's peak.
2. `after_request(agent, observation, now)` feeds cost rate, errors (with the fleet
   exception), model price and the creep day totals, and returns any new events.

`tick(now)` (call it every minute) closes hours for idle agents, which drives
forgetting, promotions, pin expiry and the daily creep check. Hard evidence the engine
cannot see comes in through `record_identity_mismatch` and `record_breaker`. Operator
verbs (`pin`, `unpin`, `rebaseline`, `on_enable`, `on_disable`) return their events for
the audit log. `snapshot()`/`restore()` carry all per-agent state as plain dicts.
`now` defaults to `clock()`; the simulation passes a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentctl.facts import RequestFacts
from agentctl.identity import Identity
from agentctl.trust import actions, claims, hours, operators
from agentctl.trust.agent import AgentState, hour_of
from agentctl.trust.config import Tier, TrustConfig
from agentctl.trust.events import TrustEvent
from agentctl.trust.explain import describe
from agentctl.trust.gate import QUARANTINED_RULE, Gate, Observation
from agentctl.trust.limits import admit
from agentctl.trust.signals import LOOP, STATISTICAL, Signal
from agentctl.trust.storms import ErrorWindow, Fleet

SNAPSHOT_VERSION = 1
QUARANTINED = Tier.QUARANTINED
_NAMES = {tier: tier.value for tier in Tier}  # plain strings, without the enum lookup cost
_QUARANTINED_MSG = "agent quarantined by trust; `agentctl agents enable` lands it in probation"


class TrustEngine:
    def __init__(self, config: TrustConfig | None = None, clock: Callable[[], float] = time.time):
        self.cfg = config or TrustConfig()
        self.clock = clock
        self._agents: dict[str, AgentState] = {}
        self._expected: dict[str, tuple[float, str, str]] = {}  # see `expect`
        self._fleet = Fleet()
        self._pinned: set[str] = set()
        self._tick_hour = -1

    # --- agents ---------------------------------------------------------------------------
    def register(
        self, agent_key: str, *, created_at: float | None = None, identity: Identity | None = None
    ) -> None:
        """Optional: tell the engine an agent's real age and identity before its first call."""
        now = self.clock() if created_at is None else created_at
        self._agent(agent_key, now, identity).created_at = now

    def expect(self, agent_key: str, *, created_at: float, identity: Identity) -> None:
        """`register`, deferred until the agent first needs state (its first request, an
        operator action): a gateway with 100,000 registered agents that never call keeps
        a small tuple for each, not a full detector state (about 3 KB)."""
        if agent_key not in self._agents:
            self._expected[agent_key] = (created_at, identity.verification, identity.purpose)

    def _agent(self, key: str, now: float, identity: Identity | None = None) -> AgentState:
        agent = self._agents.get(key)
        if agent is None:
            expected = self._expected.pop(key, None)
            if expected is not None:  # exactly what `register` would have built
                now = expected[0]
            agent = self._agents[key] = AgentState(key, now, self.cfg)
            agent.last_seen = now
            if expected is not None:
                agent.verification, agent.purpose = expected[1], expected[2]
        if identity is not None:
            agent.verification, agent.purpose = identity.verification, identity.purpose
        return agent

    def _window(self, key: str) -> ErrorWindow | None:
        agent = self._agents.get(key)
        return agent.errors if agent else None

    def agents(self) -> list[str]:
        """Every agent the engine knows, expected ones (registered, not yet seen) included."""
        return sorted(self._agents.keys() | self._expected.keys())

    def tier(self, agent_key: str) -> str:
        agent = self._agents.get(agent_key)
        return _NAMES[agent.tiers.tier] if agent else "probation"

    # --- the request path -------------------------------------------------------------------
    def before_request(
        self,
        agent_key: str,
        facts: RequestFacts,
        now: float | None = None,
        *,
        identity: Identity | None = None,
        source: str = "",
        request_id: str | None = None,
    ) -> Gate:
        now = self.clock() if now is None else now
        cfg = self.cfg
        agent = self._agents.get(agent_key) or self._agent(agent_key, now, identity)
        if identity is not None and identity.verification != agent.verification:
            agent.verification, agent.purpose = identity.verification, identity.purpose
        events: list[TrustEvent] = []
        if agent.hour != int(now // 3600):
            events += hours.roll(agent, now)
        if agent.tiers.pin is not None and agent.tiers.pin.expired(now):
            events += self._expire_pin(agent, now)
        tiers = agent.tiers
        if tiers.tier is QUARANTINED:
            return self._refuse(agent, events, 403, QUARANTINED_RULE, _QUARANTINED_MSG, None)
        gap = now - agent.last_seen  # the active clock: idle gaps count at most peak_gap_cap_s
        if gap > 0.0:
            agent.active_clock += gap if gap < cfg.peak_gap_cap_s else cfg.peak_gap_cap_s
            agent.last_seen = now
        agent.hour_active = True
        learning = agent.learning(now)
        armed = agent.active_hours >= cfg.warmup_active_hours
        prompt = facts.prompt_hash
        loop = agent.loop
        sig = loop.observe(prompt, now, cfg) if prompt else None
        if sig is not None:
            events += actions.respond(agent, sig, now, request_id)
        if not (prompt and loop.repeat):  # retries and loops are not new work
            sig = agent.requests.observe(1.0, now, agent.active_clock, cfg, learning, armed)
            if sig is not None:
                events += actions.respond(agent, sig, now, request_id)
        if source:
            sig = agent.sources.observe(source, now, cfg, learning=learning)
            if sig is not None:
                events += actions.respond(agent, sig, now, request_id)
        if tiers.tier is QUARANTINED:
            return self._refuse(agent, events, 403, QUARANTINED_RULE, _QUARANTINED_MSG, None)
        limit, refusal = admit(agent, prompt, now, learning)
        if refusal is not None:
            return self._refuse(agent, events, *refusal)
        return self._gate(agent, events, limit)

    def after_request(
        self, agent_key: str, observation: Observation, now: float | None = None
    ) -> list[TrustEvent]:
        now = self.clock() if now is None else now
        cfg = self.cfg
        obs = observation
        agent = self._agents.get(agent_key) or self._agent(agent_key, now)
        events: list[TrustEvent] = []
        if agent.hour != int(now // 3600):
            events += hours.roll(agent, now)
        agent.creep.add(obs.cost_pico, now)
        if agent.containment is not None:
            agent.containment.credit_pico -= obs.cost_pico
        if agent.tiers.tier is Tier.QUARANTINED:
            return events
        learning = agent.learning(now)
        rid = obs.request_id
        armed = agent.active_hours >= cfg.warmup_active_hours
        sig = agent.costs.observe(
            float(obs.cost_pico), now, agent.active_clock, cfg, learning, armed
        )
        if sig is not None:
            events += actions.respond(agent, sig, now, rid)
        failed = obs.status >= 400 or obs.upstream_fault
        sig = agent.errors.observe(failed and not obs.upstream_fault, failed, now, cfg)
        self._fleet.note(agent_key, now)
        if sig is not None:
            share, eligible = self._fleet.share(now, self._window, cfg)
            if self._fleet.is_outage(now, self._window, cfg):
                sig.evidence.update(
                    fleet_exception=True, fleet_share=round(share, 3), fleet_agents=eligible
                )
                events += actions.alert(agent, sig, now, rid, "info")
            else:
                events += actions.respond(agent, sig, now, rid)
        if obs.model:
            sig = agent.models.observe(
                obs.model, obs.cost_pico, obs.tokens, now, cfg, learning=learning
            )
            if sig is not None:
                events += actions.respond(agent, sig, now, rid)
        return events

    def _gate(self, agent: AgentState, events: list[TrustEvent], limit: float) -> Gate:
        tier = agent.tiers.tier
        contained = agent.containment is not None
        lane = "low" if contained else ("priority" if tier is Tier.TRUSTED else "normal")
        return Gate(
            _NAMES[tier],
            agent.verification,
            self.cfg.tier_multipliers[tier],
            lane,
            limit,
            throttled=contained,
            events=events,
        )

    def _refuse(
        self,
        agent: AgentState,
        events: list[TrustEvent],
        status: int,
        rule: str,
        message: str,
        retry_after: float | None,
    ) -> Gate:
        gate = self._gate(agent, events, 0.0 if status == 403 else self.cfg.throttle_rps)
        gate.allowed, gate.status, gate.rule_id = False, status, rule
        gate.message, gate.retry_after = message, retry_after
        return gate

    # --- evidence from outside the request path -------------------------------------------------
    def record_identity_mismatch(
        self,
        token_owner: str,
        claimed: str,
        now: float | None = None,
        *,
        request_id: str | None = None,
        source: str = "",
    ) -> list[TrustEvent]:
        """A token presented with another agent's declaration: a strike on the token's agent."""
        now = self.clock() if now is None else now
        agent = self._agent(token_owner, now)
        return claims.mismatch(agent, claimed, now, request_id=request_id, source=source)

    def record_failed_claim(
        self,
        claimed: str,
        now: float | None = None,
        *,
        source: str = "",
        reason: str = "missing_credentials",
    ) -> list[TrustEvent]:
        """A request claiming `claimed` without its credential, refused by the gateway."""
        now = self.clock() if now is None else now
        agent = self._agents.get(claimed)
        return [] if agent is None else claims.failed_claim(agent, now, source, reason)

    def record_breaker(
        self,
        agent_key: str,
        breaker: str,
        value: float,
        threshold: float,
        now: float | None = None,
        *,
        request_id: str | None = None,
    ) -> list[TrustEvent]:
        """A hard cap crossed (rolling-hour or daily spend): hard evidence, disable."""
        now = self.clock() if now is None else now
        agent = self._agent(agent_key, now)
        return claims.breaker(agent, breaker, value, threshold, now, request_id)

    # --- periodic work -------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[TrustEvent]:
        now = self.clock() if now is None else now
        events: list[TrustEvent] = []
        for key in list(self._pinned):
            agent = self._agents[key]
            pin = agent.tiers.pin
            if pin is None:
                self._pinned.discard(key)
            elif pin.expired(now):
                events += self._expire_pin(agent, now)
        hour = hour_of(now)
        if hour != self._tick_hour:
            self._tick_hour = hour
            for agent in self._agents.values():
                if agent.hour != hour:
                    events += hours.roll(agent, now)
        return events

    # --- operators ------------------------------------------------------------------------------
    def pin(
        self,
        agent_key: str,
        tier: str,
        reason: str,
        ttl: float | None = None,
        now: float | None = None,
    ) -> list[TrustEvent]:
        """Freeze the tier (ttl defaults to 24 h; 0 means no expiry). Disables still apply."""
        now = self.clock() if now is None else now
        ttl = self.cfg.pin_default_ttl_s if ttl is None else ttl
        events = operators.pin(self._agent(agent_key, now), Tier(tier), reason, ttl, now)
        self._pinned.add(agent_key)
        return events

    def unpin(self, agent_key: str, reason: str = "", now: float | None = None) -> list[TrustEvent]:
        now = self.clock() if now is None else now
        self._pinned.discard(agent_key)
        return operators.release(self._agent(agent_key, now), reason, now, automatic=False)

    def _expire_pin(self, agent: AgentState, now: float) -> list[TrustEvent]:
        self._pinned.discard(agent.key)
        return operators.release(agent, "pin expired", now, automatic=True)

    def contain_from_peer(
        self, agent_key: str, detector: str, origin: str, now: float | None = None
    ) -> list[TrustEvent]:
        """Another gateway contained this agent: contain it here too (the same strict
        buckets and drop to probation as a local throttle), so N gateways behind a load
        balancer let a runaway through at the throttle rate once, not N times."""
        now = self.clock() if now is None else now
        agent = self._agent(agent_key, now)
        if agent.containment is not None or agent.tiers.tier is Tier.QUARANTINED:
            return []
        evidence = {"peer_detector": detector, "origin": origin}
        sig = Signal("peer", LOOP if detector == "loop" else STATISTICAL, 0.0, 0.0, now, evidence)
        return actions.throttle(agent, sig, now, None)

    def rebaseline(self, agent_key: str, reason: str, now: float | None = None) -> list[TrustEvent]:
        """Accept current behaviour: peaks, model ceiling and creep reference are relearnt."""
        now = self.clock() if now is None else now
        return operators.rebaseline(self._agent(agent_key, now), reason, now)

    def on_enable(
        self, agent_key: str, reason: str = "", now: float | None = None
    ) -> list[TrustEvent]:
        """`agentctl agents enable`: out of quarantine into probation, never higher."""
        now = self.clock() if now is None else now
        return operators.enable(self._agent(agent_key, now), reason, now)

    def on_disable(
        self, agent_key: str, reason: str = "", now: float | None = None
    ) -> list[TrustEvent]:
        """`agentctl agents disable`: quarantine by hand."""
        now = self.clock() if now is None else now
        self._pinned.discard(agent_key)
        return operators.disable(self._agent(agent_key, now), reason, now)

    def explain(self, agent_key: str, now: float | None = None) -> dict[str, Any]:
        now = self.clock() if now is None else now
        agent = self._agents.get(agent_key)
        if agent is None:
            raise KeyError(agent_key)
        return describe(agent, now)

    # --- persistence ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "agents": {key: agent.to_state() for key, agent in self._agents.items()},
            "fleet": self._fleet.to_state(),
        }

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported trust snapshot version {data.get('version')!r}")
        self._agents = {k: AgentState.from_state(v, self.cfg) for k, v in data["agents"].items()}
        self._fleet = Fleet.from_state(data["fleet"])
        self._pinned = {k for k, a in self._agents.items() if a.tiers.pin is not None}
        self._tick_hour = -1
