"""Operator verbs on one agent: pin, release, rebaseline, enable, disable.

Each returns its audit events (kind `operator`, or `tier_change` when the tier moves;
`automatic` False, the operator's reason attached); the CLI adds who did it. Pins
freeze automatic tier changes until they expire (24 h by default), but hard evidence
still quarantines; `rebaseline` is how an owner accepts new behaviour (a feature
launch, a model migration, acknowledged creep): peaks, the model ceiling and the creep
reference are relearnt, and statistical detectors only alert for the next day.
`enable` always lands in probation, whatever the tier before the disable.
"""

from __future__ import annotations

from agentctl.trust import actions, hours
from agentctl.trust.agent import AgentState
from agentctl.trust.config import Tier
from agentctl.trust.events import TrustEvent
from agentctl.trust.tiers import Pin


def pin(agent: AgentState, target: Tier, reason: str, ttl: float, now: float) -> list[TrustEvent]:
    if target is Tier.QUARANTINED or agent.tiers.tier is Tier.QUARANTINED:
        raise ValueError("pins move between live tiers; use agents disable/enable for quarantine")
    before = agent.tiers.tier
    agent.tiers.pin = None
    if target is not before:
        agent.tiers.move(target, now, agent.cfg, automatic=False)
    agent.tiers.pin = Pin(target, reason, now, now + ttl if ttl > 0 else None)
    return [
        actions.operator_event(agent, "pin", now, before, reason, pin=agent.tiers.pin.as_dict())
    ]


def release(agent: AgentState, reason: str, now: float, *, automatic: bool) -> list[TrustEvent]:
    """Remove the pin (by hand or on expiry); automatic rules apply again at once."""
    current = agent.tiers.pin
    if current is None:
        return []
    agent.tiers.pin = None
    tier = agent.tiers.tier
    event = actions.operator_event(agent, "pin", now, tier, reason, released=current.as_dict())
    event.automatic = automatic
    return [event, *hours.reevaluate(agent, now, hour_close=False)]


def rebaseline(agent: AgentState, reason: str, now: float) -> list[TrustEvent]:
    agent.requests.reset_baseline()
    agent.costs.reset_baseline()
    agent.models.reset_baseline()
    agent.creep.reset_reference()
    agent.containment = None
    agent.relearn_until = now + agent.cfg.rebaseline_learning_s
    before = agent.tiers.tier
    relearn = agent.relearn_until
    return [actions.operator_event(agent, "rebaseline", now, before, reason, relearn_until=relearn)]


def enable(agent: AgentState, reason: str, now: float) -> list[TrustEvent]:
    before = agent.tiers.tier
    agent.loop.reset()
    agent.strikes.clear()
    agent.containment = None
    agent.errors.storm_since = None
    if before is not Tier.QUARANTINED:
        return []
    agent.tiers.move(Tier.PROBATION, now, agent.cfg, automatic=False)
    return [actions.operator_event(agent, "enable", now, before, reason)]


def disable(agent: AgentState, reason: str, now: float) -> list[TrustEvent]:
    before = agent.tiers.tier
    if before is Tier.QUARANTINED:
        return []
    agent.tiers.pin = None
    agent.containment = None
    agent.tiers.move(Tier.QUARANTINED, now, agent.cfg, automatic=False)
    return [actions.operator_event(agent, "disable", now, before, reason)]
