"""From signals to actions: the severity ladder, containment and tier moves.

* `weak` -> alert (low, +1 bad evidence), deduplicated per detector per hour; while the
  same detector holds the agent contained, a weak signal only extends the containment.
* `statistical` -> throttle; during learning mode (or after a rebaseline) an alert only.
* `loop` -> throttle even in learning mode: the loop detector needs no history.
* `hard` -> disable (quarantined, critical evidence), even when pinned.
* a throttle starts *containment* (strict buckets, the looping prompt refused) and drops
  the agent to probation at once unless pinned; a signal that goes on while contained
  only extends it, until it has gone on for `loop_persist_s` (loop) or `rate_persist_s`
  (request or cost rate) since the throttle: that is a loop continuing after
  throttling, hard evidence, so it disables.

Every action appends exactly one `TrustEvent` to the agent's ring and returns it.
"""

from __future__ import annotations

from typing import Any

from agentctl.trust.agent import AgentState, Containment
from agentctl.trust.config import SEVERITY_WEIGHTS, Tier, TrustConfig
from agentctl.trust.events import (
    ALERT,
    DISABLE,
    OPERATOR,
    THROTTLE,
    TIER_CHANGE,
    TrustEvent,
    undo_command,
)
from agentctl.trust.signals import HARD, LOOP, MEDIUM, STATISTICAL, WEAK, Signal

_SERIOUS = ("medium", "high", "critical")


def emit(
    agent: AgentState,
    kind: str,
    detector: str,
    severity: str,
    now: float,
    value: float,
    threshold: float,
    before: Tier,
    *,
    request_id: str | None = None,
    evidence: dict[str, Any] | None = None,
    automatic: bool = True,
    reason: str = "",
) -> TrustEvent:
    after = agent.tiers.tier
    event = TrustEvent(
        agent.key,
        kind,
        detector,
        severity,
        now,
        float(value),
        float(threshold),
        before.value,
        after.value,
        request_id,
        evidence or {},
        undo_command(agent.key, kind, detector, before.value),
        automatic,
        reason,
    )
    agent.events.append(event)
    return event


def add_evidence(agent: AgentState, severity: str, now: float) -> None:
    agent.score.bad += SEVERITY_WEIGHTS[severity]
    if severity in _SERIOUS:
        agent.hour_bad = True
        agent.tiers.last_medium_at = now


def move(agent: AgentState, to: Tier, now: float, *, automatic: bool) -> list[TrustEvent]:
    """Move the tier; returns the flap-lock alert if this change started one."""
    before = agent.tiers.tier
    if not agent.tiers.move(to, now, agent.cfg, automatic=automatic):
        return []
    lock = agent.tiers.flap_until or now
    return [
        emit(
            agent,
            ALERT,
            "flap_lock",
            "low",
            now,
            len(agent.tiers.changes),
            agent.cfg.flap_changes,
            before,
            evidence={"locked_until": lock},
        )
    ]


def respond(agent: AgentState, sig: Signal, now: float, request_id: str | None) -> list[TrustEvent]:
    if sig.level == HARD:
        return disable(agent, sig, now, request_id)
    if sig.level == WEAK:
        c = agent.containment
        if c is not None and c.detector == sig.detector:
            c.last_signal_at = now  # the contained behaviour goes on: containment holds
            return []
        return alert(agent, sig, now, request_id, "low")
    if sig.level == MEDIUM:
        return escalate(agent, sig, now, request_id)
    if sig.level == STATISTICAL and agent.learning(now):
        sig.evidence["learning"] = True
        return alert(agent, sig, now, request_id, "low")
    return throttle(agent, sig, now, request_id)


def alert(
    agent: AgentState, sig: Signal, now: float, request_id: str | None, severity: str
) -> list[TrustEvent]:
    last = agent.alerted.get(sig.detector)
    if last is not None and now - last < agent.cfg.alert_dedup_s:
        return []
    agent.alerted[sig.detector] = now
    add_evidence(agent, severity, now)
    tier = agent.tiers.tier
    return [
        emit(
            agent,
            ALERT,
            sig.detector,
            severity,
            now,
            sig.value,
            sig.threshold,
            tier,
            request_id=request_id,
            evidence=sig.evidence,
        )
    ]


def escalate(
    agent: AgentState, sig: Signal, now: float, request_id: str | None
) -> list[TrustEvent]:
    before = agent.tiers.tier
    add_evidence(agent, "medium", now)
    events: list[TrustEvent] = []
    if before is Tier.TRUSTED and agent.tiers.pin is None:
        events += move(agent, Tier.STANDARD, now, automatic=True)
    kind = TIER_CHANGE if agent.tiers.tier is not before else ALERT
    event = emit(
        agent,
        kind,
        sig.detector,
        "medium",
        now,
        sig.value,
        sig.threshold,
        before,
        request_id=request_id,
        evidence=sig.evidence,
    )
    return [event, *events]


def _persist_limit(cfg: TrustConfig, sig: Signal) -> float | None:
    if sig.level == LOOP:
        return cfg.loop_persist_s
    if sig.detector in ("request_rate", "cost_rate"):
        return cfg.rate_persist_s
    return None


def throttle(
    agent: AgentState, sig: Signal, now: float, request_id: str | None
) -> list[TrustEvent]:
    cfg = agent.cfg
    c = agent.containment
    if c is not None:
        c.last_signal_at = now
        agent.hour_bad = True  # an hour spent hammering while contained is not a clean hour
        limit = _persist_limit(cfg, sig)
        if limit is not None and now - max(c.started_at, sig.since) >= limit:
            sig.evidence.update(throttled_at=c.started_at, persisted_s=round(now - c.started_at, 1))
            return disable(agent, sig, now, request_id)
        return []
    before = agent.tiers.tier
    add_evidence(agent, "high", now)
    agent.containment = Containment(
        sig.detector,
        now,
        now,
        max(1.0, cfg.throttle_rps * cfg.burst_seconds),
        cfg.throttle_pico_per_minute,
        now,
    )
    events: list[TrustEvent] = []
    if before.rank > Tier.PROBATION.rank and agent.tiers.pin is None:
        events = move(agent, Tier.PROBATION, now, automatic=True)
    sig.evidence.update(
        contained=True, throttle_rps=cfg.throttle_rps, clears_after_quiet_s=cfg.throttle_clear_s
    )
    if agent.tiers.pin is not None:
        sig.evidence["pinned_tier_kept"] = agent.tiers.pin.tier.value
    event = emit(
        agent,
        THROTTLE,
        sig.detector,
        "high",
        now,
        sig.value,
        sig.threshold,
        before,
        request_id=request_id,
        evidence=sig.evidence,
    )
    return [event, *events]


def disable(agent: AgentState, sig: Signal, now: float, request_id: str | None) -> list[TrustEvent]:
    before = agent.tiers.tier
    if before is Tier.QUARANTINED:
        return []
    add_evidence(agent, "critical", now)
    if agent.tiers.pin is not None:
        sig.evidence["pin_cleared"] = agent.tiers.pin.as_dict()
        agent.tiers.pin = None
    agent.containment = None
    agent.tiers.move(Tier.QUARANTINED, now, agent.cfg, automatic=False)
    return [
        emit(
            agent,
            DISABLE,
            sig.detector,
            "critical",
            now,
            sig.value,
            sig.threshold,
            before,
            request_id=request_id,
            evidence=sig.evidence,
        )
    ]


def operator_event(
    agent: AgentState, detector: str, now: float, before: Tier, reason: str, **evidence: Any
) -> TrustEvent:
    kind = TIER_CHANGE if agent.tiers.tier is not before else OPERATOR
    return emit(
        agent,
        kind,
        detector,
        "info",
        now,
        0.0,
        0.0,
        before,
        evidence=evidence,
        automatic=False,
        reason=reason,
    )
