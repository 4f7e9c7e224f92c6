"""`explain`: why an agent is in its tier, as one JSON-able dict for `agentctl trust explain`.

It answers "why was my bot throttled at 02:13?" from the engine's memory alone: the
tier and since when, the score (E and L) against the thresholds that would move it,
what still blocks a promotion, the pin, the containment, every detector's live state
and the last events with their evidence and undo commands. `summary` is one sentence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentctl.trust.agent import AgentState
from agentctl.trust.config import Tier
from agentctl.trust.signals import measured


def _blockers(agent: AgentState, now: float) -> list[str]:
    cfg, tiers = agent.cfg, agent.tiers
    ceiling = agent.ceiling(now)
    out = []
    if tiers.tier is Tier.QUARANTINED:
        out.append("quarantined: only `agentctl agents enable` leaves it (lands in probation)")
    if tiers.pin is not None:
        out.append(f"pinned at {tiers.pin.tier.value}")
    if tiers.tier.rank >= ceiling.rank and tiers.tier is not Tier.QUARANTINED:
        out.append(f"at its ceiling ({ceiling.value}: verification, age and purpose)")
    if agent.learning(now):
        out.append("learning mode")
    if agent.containment is not None:
        out.append("contained after a throttle")
    if tiers.flap_locked(now):
        out.append("flap lock")
    if (
        tiers.last_medium_at is not None
        and now - tiers.last_medium_at < cfg.quiet_before_promotion_s
    ):
        out.append("a medium-or-worse event in the last 24 h")
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(agent: AgentState, now: float) -> str:
    tier = agent.tiers.tier
    last = next(
        (
            e
            for e in reversed(agent.events)
            if e.tier_after == tier.value and e.tier_before != e.tier_after
        ),
        None,
    )
    text = f"{agent.key} is {tier.value}"
    if last is not None:
        text += (
            f" since {_iso(last.at)} after a {last.kind} by {last.detector}"
            f"{measured(last.detector, last.value, last.threshold)}"
        )
    elif agent.tiers.tier is Tier.PROBATION:
        text += " (every agent starts in probation)"
    if agent.containment is not None:
        text += (
            f"; contained since {_iso(agent.containment.started_at)} ({agent.containment.detector})"
        )
    return text


def describe(agent: AgentState, now: float) -> dict[str, Any]:
    cfg, tiers, score = agent.cfg, agent.tiers, agent.score
    clock = agent.active_clock
    c = agent.containment
    return {
        "agent": agent.key,
        "summary": _summary(agent, now),
        "tier": tiers.tier.value,
        "tier_since": tiers.since,
        "verification": agent.verification,
        "ceiling": agent.ceiling(now).value,
        "learning": agent.learning(now),
        "age_s": now - agent.created_at,
        "active_hours": agent.active_hours,
        "score": {
            "good": round(score.good, 3),
            "bad": round(score.bad, 3),
            "mean": round(score.mean, 4),
            "lower": round(score.lower, 4),
            "demote_below_mean": {
                "trusted": cfg.demote_trusted_mean,
                "standard": cfg.demote_standard_mean,
            },
            "promote_at_lower": {
                "standard": cfg.promote_standard_lower,
                "trusted": cfg.promote_trusted_lower,
            },
            "promotion_streak_since": tiers.streak_since,
        },
        "promotion_blocked_by": _blockers(agent, now),
        "pin": tiers.pin.as_dict() if tiers.pin else None,
        "flap_lock_until": tiers.flap_until if tiers.flap_locked(now) else None,
        "containment": c.to_state() if c else None,
        "limits": {
            "base_rps": agent.base_rps(now),
            "multiplier": cfg.multiplier(tiers.tier),
            "limit_rps": cfg.throttle_rps
            if c
            else cfg.multiplier(tiers.tier) * agent.base_rps(now),
        },
        "detectors": {
            "request_rate": agent.requests.state(now, clock, cfg),
            "cost_rate": agent.costs.state(now, clock, cfg),
            "loop": agent.loop.state(now, cfg),
            "error_storm": agent.errors.state(now),
            "model_jump": agent.models.state(),
            "cost_creep": agent.creep.state(),
            "source": agent.sources.state(),
            "identity_mismatch": {
                "strikes": len([t for t in agent.strikes if now - t < cfg.mismatch_window_s])
            },
        },
        "events": [e.as_dict() for e in reversed(agent.events)],
    }
