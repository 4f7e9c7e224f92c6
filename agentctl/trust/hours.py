"""The hour close: evidence, forgetting, the daily creep check and tier re-evaluation.

Run lazily on the first call in a new hour (or by `tick` for idle agents). An active
hour (one with an arrival) without a medium-or-worse event adds one good observation;
then both sides of the score decay for every hour that passed. Demotion is checked
whenever evidence arrives and at every close; promotion only at a close, because its
dwell is counted in hours. Containment ends here too once its detector has been quiet
for `throttle_clear_s`, so an agent that stopped misbehaving at 02:13 is uncontained
by 03:00 at the latest, in probation, and climbs back through the promotion rules.
"""

from __future__ import annotations

from agentctl.trust.actions import emit, move, respond
from agentctl.trust.agent import AgentState, hour_of
from agentctl.trust.config import Tier
from agentctl.trust.events import TIER_CHANGE, TrustEvent


def reevaluate(agent: AgentState, now: float, *, hour_close: bool) -> list[TrustEvent]:
    tiers, score, cfg = agent.tiers, agent.score, agent.cfg
    before = tiers.tier
    ceiling = agent.ceiling(now)
    target = tiers.demotion(score, cfg, ceiling)
    value, threshold = score.mean, 0.0
    if target is not None:
        threshold = cfg.demote_trusted_mean if before is Tier.TRUSTED else cfg.demote_standard_mean
    elif hour_close:
        blocked = agent.learning(now) or agent.containment is not None
        target = tiers.promotion(score, now, cfg, ceiling, blocked=blocked)
        value = score.lower
        threshold = (
            cfg.promote_trusted_lower if target is Tier.TRUSTED else cfg.promote_standard_lower
        )
    if target is None or target is before:
        return []
    extra = move(agent, target, now, automatic=True)
    evidence = {
        "mean": round(score.mean, 4),
        "lower": round(score.lower, 4),
        "good": round(score.good, 2),
        "bad": round(score.bad, 2),
        "ceiling": ceiling.value,
    }
    event = emit(
        agent, TIER_CHANGE, "score", "info", now, value, threshold, before, evidence=evidence
    )
    return [event, *extra]


def roll(agent: AgentState, now: float) -> list[TrustEvent]:
    """Close every hour (and day) that ended before `now`: evidence, forgetting, tiers."""
    hour = hour_of(now)
    if agent.hour < 0:
        agent.hour = hour
        agent.creep.roll(now, agent.cfg)
        return []
    if hour <= agent.hour:
        return []
    cfg = agent.cfg
    if agent.hour_active:
        agent.active_hours += 1
        if not agent.hour_bad:
            agent.score.good += 1.0
    agent.score.forget(hour - agent.hour, cfg.score_half_life_h)
    agent.hour, agent.hour_active, agent.hour_bad = hour, False, False
    c = agent.containment
    if c is not None and now - c.last_signal_at >= cfg.throttle_clear_s:
        agent.containment = None
    events: list[TrustEvent] = []
    sig = agent.creep.roll(now, cfg)
    if sig is not None:
        events += respond(agent, sig, now, None)
    if agent.tiers.tier is not Tier.QUARANTINED:
        events += reevaluate(agent, now, hour_close=True)
    return events
