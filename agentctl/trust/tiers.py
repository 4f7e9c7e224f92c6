"""Tiers with hysteresis: demote fast on the mean, promote slowly on the lower bound.

Down (any time evidence arrives, and at every hour close): trusted -> standard when
E < 0.70, standard -> probation when E < 0.45; throttle and disable act directly
(see `actions.py`). Up (checked at hour close only): one step when L has stayed at or
above 0.60 (for standard) or 0.85 (for trusted) for the whole dwell (24 h / 72 h),
with at least 1 h in the current tier, 24 h since the last promotion and no
medium-or-worse event for 24 h; never during learning mode or containment, never
above the agent's ceiling (probation for unverified agents; standard unless the agent
has a token, is 14 days old and its purpose is not development). More than
`flap_changes` automatic changes in 7 days lock promotions for 7 days ("flapping").
A pin freezes the tier, except that a disable still quarantines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentctl.trust.config import Tier, TrustConfig
from agentctl.trust.score import BetaScore


@dataclass(slots=True)
class Pin:
    tier: Tier
    reason: str
    at: float
    until: float | None

    def expired(self, now: float) -> bool:
        return self.until is not None and now >= self.until

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier.value, "reason": self.reason, "at": self.at, "until": self.until}


@dataclass(slots=True)
class TierState:
    tier: Tier = Tier.PROBATION
    since: float = 0.0
    last_promotion_at: float | None = None
    changes: list[float] = field(default_factory=list)  # automatic changes in the flap window
    flap_until: float | None = None
    streak_since: float | None = None
    last_medium_at: float | None = None
    pin: Pin | None = None

    def move(self, to: Tier, now: float, cfg: TrustConfig, *, automatic: bool) -> bool:
        """Change tier; True when this automatic change starts a flap lock."""
        promoted = to.rank > self.tier.rank
        self.tier, self.since, self.streak_since = to, now, None
        if promoted:
            self.last_promotion_at = now
        if not automatic:
            return False
        horizon = now - cfg.flap_window_s
        self.changes = [t for t in self.changes if t > horizon]
        self.changes.append(now)
        if len(self.changes) > cfg.flap_changes and not self.flap_locked(now):
            self.flap_until = now + cfg.flap_lock_s
            return True
        return False

    def flap_locked(self, now: float) -> bool:
        return self.flap_until is not None and now < self.flap_until

    def demotion(self, score: BetaScore, cfg: TrustConfig, ceiling: Tier) -> Tier | None:
        if self.pin is not None or self.tier is Tier.QUARANTINED:
            return None
        if self.tier.rank > ceiling.rank:
            return ceiling
        mean = score.mean
        if self.tier is Tier.TRUSTED and mean < cfg.demote_trusted_mean:
            return Tier.STANDARD
        if self.tier is Tier.STANDARD and mean < cfg.demote_standard_mean:
            return Tier.PROBATION
        return None

    def promotion(
        self, score: BetaScore, now: float, cfg: TrustConfig, ceiling: Tier, *, blocked: bool
    ) -> Tier | None:
        """Hour-close check; keeps the streak of hours with L above the next threshold."""
        if (
            blocked
            or self.pin is not None
            or self.tier is Tier.QUARANTINED
            or self.flap_locked(now)
        ):
            self.streak_since = None
            return None
        target = self.tier.step(+1)
        if target is Tier.QUARANTINED or self.tier is Tier.TRUSTED:
            return None
        if target is Tier.TRUSTED:
            need, dwell = cfg.promote_trusted_lower, cfg.promote_trusted_dwell_s
        else:
            need, dwell = cfg.promote_standard_lower, cfg.promote_standard_dwell_s
        if score.lower < need:
            self.streak_since = None
            return None
        if self.streak_since is None:
            self.streak_since = now
        ready = (
            now - self.streak_since >= dwell
            and now - self.since >= cfg.min_dwell_s
            and (
                self.last_promotion_at is None
                or now - self.last_promotion_at >= cfg.promotion_gap_s
            )
            and (
                self.last_medium_at is None
                or now - self.last_medium_at >= cfg.quiet_before_promotion_s
            )
        )
        # The streak runs even at the ceiling, so an agent whose only obstacle was its age
        # is promoted the hour it becomes old enough.
        return target if ready and target.rank <= ceiling.rank else None

    def to_state(self) -> dict[str, Any]:
        return {
            "tier": self.tier.value,
            "since": self.since,
            "last_promotion_at": self.last_promotion_at,
            "changes": list(self.changes),
            "flap_until": self.flap_until,
            "streak_since": self.streak_since,
            "last_medium_at": self.last_medium_at,
            "pin": self.pin.as_dict() if self.pin else None,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> TierState:
        pin = data.get("pin")
        return cls(
            Tier(data["tier"]),
            float(data["since"]),
            data["last_promotion_at"],
            [float(t) for t in data["changes"]],
            data["flap_until"],
            data["streak_since"],
            data["last_medium_at"],
            Pin(Tier(pin["tier"]), pin["reason"], pin["at"], pin["until"]) if pin else None,
        )
