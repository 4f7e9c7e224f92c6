"""Everything the engine remembers about one agent, and its JSON-able snapshot.

A few KB per agent and O(1) work per request: decayed rates, two hash buckets, five
error buckets, a bounded model map and source set, the score, the tier machine, an
optional containment. `to_state`/`from_state` round-trip through plain dicts so the
gateway can persist them (and later share parts through Redis). The *active clock*
advances with wall time between requests but counts each idle gap as at most
`peak_gap_cap_s`; peaks decay on it, so sleeping is not forgetting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agentctl.trust.config import HOUR, Tier, TrustConfig
from agentctl.trust.creep import CreepCusum
from agentctl.trust.escalation import ModelJumpDetector
from agentctl.trust.events import TrustEvent
from agentctl.trust.loop import LoopDetector
from agentctl.trust.rates import RateDetector
from agentctl.trust.score import BetaScore
from agentctl.trust.sources import SourceTracker
from agentctl.trust.storms import ErrorWindow
from agentctl.trust.tiers import TierState

MIN_BASE_RPS = 1.0  # a base below 1 req/s would starve a quiet agent in probation


@dataclass(slots=True)
class Containment:
    """Active after a throttle-class event: strict request and dollar buckets."""

    detector: str
    started_at: float
    last_signal_at: float
    tokens: float
    credit_pico: int
    refilled_at: float

    def to_state(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "started_at": self.started_at,
            "last_signal_at": self.last_signal_at,
            "tokens": self.tokens,
            "credit_pico": self.credit_pico,
            "refilled_at": self.refilled_at,
        }


@dataclass(slots=True)
class AgentState:
    key: str
    created_at: float
    cfg: TrustConfig
    verification: str = "unverified"  # until the gateway says a token was presented
    purpose: str = ""
    tiers: TierState = field(default_factory=TierState)
    score: BetaScore = field(default_factory=BetaScore)
    requests: RateDetector = field(init=False)
    costs: RateDetector = field(init=False)
    loop: LoopDetector = field(default_factory=LoopDetector)
    errors: ErrorWindow = field(default_factory=ErrorWindow)
    models: ModelJumpDetector = field(default_factory=ModelJumpDetector)
    creep: CreepCusum = field(default_factory=CreepCusum)
    sources: SourceTracker = field(default_factory=SourceTracker)
    strikes: list[float] = field(default_factory=list)
    containment: Containment | None = None
    active_clock: float = 0.0
    last_seen: float = 0.0
    hour: int = -1
    hour_active: bool = False
    hour_bad: bool = False
    active_hours: int = 0
    relearn_until: float = 0.0
    bucket_tokens: float = -1.0
    bucket_at: float = 0.0
    alerted: dict[str, float] = field(default_factory=dict)  # dedup key -> last alert time
    events: deque[TrustEvent] = field(default_factory=deque)

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.requests = RateDetector("request_rate", cfg.rate_floor_rps, cfg.rate_slow_multiple)
        self.costs = RateDetector("cost_rate", cfg.cost_floor_pico_per_s, cfg.cost_slow_multiple)
        self.events = deque(self.events, maxlen=self.cfg.events_kept)
        if self.tiers.since == 0.0:
            self.tiers.since = self.created_at

    # --- derived state ------------------------------------------------------------------
    def learning(self, now: float) -> bool:
        cfg = self.cfg
        return (
            now - self.created_at < cfg.learning_s
            or self.active_hours < cfg.learning_min_active_hours
            or now < self.relearn_until
        )

    def ceiling(self, now: float) -> Tier:
        if self.verification != "token":
            return Tier.PROBATION
        if now - self.created_at < self.cfg.trusted_min_age_s or self.purpose == "development":
            return Tier.STANDARD
        return Tier.TRUSTED

    def base_rps(
        self, now: float, learning: bool | None = None, peak: float | None = None
    ) -> float:
        """3x the own fast peak (>= 1 req/s); in learning, the default up to 4x the default."""
        cfg = self.cfg
        if peak is None:
            peak = self.requests.peaks(self.active_clock, cfg)[0]
        own = cfg.base_peak_multiple * peak
        if self.learning(now) if learning is None else learning:
            return min(max(cfg.default_base_rps, own), cfg.learning_base_cap * cfg.default_base_rps)
        return own if own > MIN_BASE_RPS else MIN_BASE_RPS

    # --- snapshot -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "created_at": self.created_at,
            "verification": self.verification,
            "purpose": self.purpose,
            "tiers": self.tiers.to_state(),
            "score": self.score.to_state(),
            "requests": self.requests.to_state(),
            "costs": self.costs.to_state(),
            "loop": self.loop.to_state(),
            "errors": self.errors.to_state(),
            "models": self.models.to_state(),
            "creep": self.creep.to_state(),
            "sources": self.sources.to_state(),
            "strikes": list(self.strikes),
            "containment": self.containment.to_state() if self.containment else None,
            "active_clock": self.active_clock,
            "last_seen": self.last_seen,
            "hour": self.hour,
            "hour_active": self.hour_active,
            "hour_bad": self.hour_bad,
            "active_hours": self.active_hours,
            "relearn_until": self.relearn_until,
            "bucket": [self.bucket_tokens, self.bucket_at],
            "alerted": dict(self.alerted),
            "events": [e.as_dict() for e in self.events],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any], cfg: TrustConfig) -> AgentState:
        agent = cls(
            data["key"], float(data["created_at"]), cfg, data["verification"], data["purpose"]
        )
        agent.tiers = TierState.from_state(data["tiers"])
        agent.score = BetaScore.from_state(data["score"])
        agent.requests = RateDetector.from_state(
            "request_rate", cfg.rate_floor_rps, cfg.rate_slow_multiple, data["requests"]
        )
        agent.costs = RateDetector.from_state(
            "cost_rate", cfg.cost_floor_pico_per_s, cfg.cost_slow_multiple, data["costs"]
        )
        agent.loop = LoopDetector.from_state(data["loop"])
        agent.errors = ErrorWindow.from_state(data["errors"])
        agent.models = ModelJumpDetector.from_state(data["models"])
        agent.creep = CreepCusum.from_state(data["creep"])
        agent.sources = SourceTracker.from_state(data["sources"])
        agent.strikes = [float(t) for t in data["strikes"]]
        c = data["containment"]
        agent.containment = Containment(**c) if c else None
        agent.active_clock = float(data["active_clock"])
        agent.last_seen = float(data["last_seen"])
        agent.hour = int(data["hour"])
        agent.hour_active = bool(data["hour_active"])
        agent.hour_bad = bool(data["hour_bad"])
        agent.active_hours = int(data["active_hours"])
        agent.relearn_until = float(data["relearn_until"])
        agent.bucket_tokens, agent.bucket_at = data["bucket"]
        agent.alerted = {k: float(v) for k, v in data["alerted"].items()}
        agent.events.extend(TrustEvent.from_dict(e) for e in data["events"])
        return agent


def hour_of(now: float) -> int:
    return int(now // HOUR)
