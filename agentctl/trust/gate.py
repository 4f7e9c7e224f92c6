"""What the engine tells the gateway before a request (`Gate`) and hears after (`Observation`).

The gateway maps a refused gate straight onto `agentctl.errors.Refusal`:
`Refusal(gate.status, gate.rule_id, gate.message, retry_after=gate.retry_after)`.
Rule ids are stable API:

* `trust-quarantined` (403): the agent was disabled on hard evidence; `agentctl agents
  enable NAME --reason ...` lands it in probation.
* `trust-loop-blocked` (429): this exact normalised prompt is looping; other prompts pass.
* `trust-throttled` (429): containment after a throttle-class event (6 requests and
  10 cents a minute by default) until the detector has been quiet for 10 minutes.
* `trust-rate-limited` (429): beyond the tier's own limit, `multiplier x base`, base
  being 3x the agent's own peak rate (or conservative defaults before a baseline).

`rate_multiplier` scales the static policy limits (hard caps still apply to every tier);
`lane` is the priority queue: priority (trusted), normal, low (contained).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentctl.trust.events import TrustEvent

QUARANTINED_RULE = "trust-quarantined"
LOOP_RULE = "trust-loop-blocked"
THROTTLED_RULE = "trust-throttled"
RATE_RULE = "trust-rate-limited"


@dataclass(slots=True)
class Observation:
    status: int = 200
    cost_pico: int = 0
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error_kind: str = ""  # e.g. "client", "rate_limit", "timeout", "upstream"
    upstream_fault: bool = False  # 5xx, timeout, connection error: not the agent's doing
    prompt_hash: str = ""  # informational; loops are counted at arrival, from the facts
    request_id: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Gate:
    tier: str
    verification: str
    rate_multiplier: float
    lane: str
    limit_rps: float
    throttled: bool = False
    allowed: bool = True
    status: int = 200
    rule_id: str = ""
    message: str = ""
    retry_after: float | None = None
    events: list[TrustEvent] = field(default_factory=list)
