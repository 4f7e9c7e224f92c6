"""The one shape every trust action takes: `TrustEvent`, ready for the audit log.

Kinds: `alert` (weak signal, or a statistical one during learning or under a fleet
exception), `throttle` (statistical anomaly or loop: containment plus a drop to
probation), `disable` (hard evidence: quarantined until `agentctl agents enable`),
`tier_change` (score, hysteresis, flap lock, pin expiry) and `operator` (pin, unpin,
rebaseline, enable; the CLI adds the operator's name). A throttle or disable that
moves the tier carries `tier_before`/`tier_after` itself: no second tier_change event.

`detector` ids are stable API: loop, request_rate, cost_rate, error_storm, model_jump,
cost_creep, source, identity_mismatch, failed_claim, breaker, score, flap_lock, pin.
`undo` is the command an operator would run to reverse the action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALERT = "alert"
THROTTLE = "throttle"
DISABLE = "disable"
TIER_CHANGE = "tier_change"
OPERATOR = "operator"


@dataclass(slots=True)
class TrustEvent:
    agent: str
    kind: str
    detector: str
    severity: str
    at: float
    value: float
    threshold: float
    tier_before: str
    tier_after: str
    request_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    undo: str | None = None
    automatic: bool = True
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "kind": self.kind,
            "detector": self.detector,
            "severity": self.severity,
            "at": self.at,
            "value": self.value,
            "threshold": self.threshold,
            "tier_before": self.tier_before,
            "tier_after": self.tier_after,
            "request_id": self.request_id,
            "evidence": dict(self.evidence),
            "undo": self.undo,
            "automatic": self.automatic,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrustEvent:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def undo_command(agent: str, kind: str, detector: str, tier_before: str) -> str | None:
    if kind == DISABLE or detector == "disable":  # detector "disable": an operator's
        return f'agentctl agents enable {agent} --reason "..."'
    if detector == "pin":  # an operator's pin: unpinning gives the engine the tier back
        return f'agentctl trust unpin {agent} --reason "..."'
    if kind in (THROTTLE, TIER_CHANGE) and tier_before not in ("", "quarantined"):
        return f'agentctl trust pin {agent} --tier {tier_before} --ttl 24h --reason "..."'
    if kind == ALERT and detector in ("cost_creep", "request_rate", "cost_rate", "model_jump"):
        return f'agentctl trust rebaseline {agent} --reason "..."'
    return None
