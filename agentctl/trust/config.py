"""Every trust-engine parameter in one frozen object, with the defaults the simulation tuned.

`docs/decisions-trust.md` carries the parameter table and why each value is what it is;
the names here are stable because snapshots and `explain` output mention them.
Durations are seconds, rates are per second, money is integer pico-dollars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from agentctl.money import to_pico

HOUR = 3600.0
DAY = 86400.0


class Tier(StrEnum):
    QUARANTINED = "quarantined"
    PROBATION = "probation"
    STANDARD = "standard"
    TRUSTED = "trusted"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def step(self, delta: int) -> Tier:
        return _ORDER[max(0, min(len(_ORDER) - 1, self.rank + delta))]


_ORDER = (Tier.QUARANTINED, Tier.PROBATION, Tier.STANDARD, Tier.TRUSTED)
_RANK = {tier: i for i, tier in enumerate(_ORDER)}

# Evidence weights per severity (trust.md 4.4); info adds nothing.
SEVERITY_WEIGHTS = {"info": 0.0, "low": 1.0, "medium": 3.0, "high": 10.0, "critical": 40.0}


@dataclass(frozen=True, slots=True)
class TrustConfig:
    # --- tiers and the limits they scale -------------------------------------------------
    tier_multipliers: dict[str, float] = field(
        default_factory=lambda: {
            "quarantined": 0.0,
            "probation": 0.25,
            "standard": 1.0,
            "trusted": 2.0,
        }
    )
    base_peak_multiple: float = 3.0  # base limit = 3 x the agent's own peak request rate
    default_base_rps: float = 20.0  # base before any history (probation: 5 req/s)
    learning_base_cap: float = 4.0  # during learning, base <= this x default_base_rps
    burst_seconds: float = 30.0  # token-bucket capacity, in seconds of the limit rate
    # --- containment after a throttle-class event -----------------------------------------
    throttle_rps: float = 0.1  # 6 requests a minute
    throttle_pico_per_minute: int = to_pico("0.10")  # and 10 cents a minute
    throttle_clear_s: float = 600.0  # containment ends this long after the last signal
    # --- repeated-prompt loop detector ----------------------------------------------------
    loop_window_s: float = 60.0
    loop_count: int = 20  # identical normalised prompts per window
    loop_max_hashes: int = 1024  # per bucket; a full bucket rotates early
    loop_persist_s: float = 120.0  # loop still firing this long after throttle: disable
    # --- decayed request and cost rates against the agent's own peaks ----------------------
    rate_fast_tau_s: float = 30.0
    rate_slow_tau_s: float = 120.0
    rate_fast_multiple: float = 3.0
    rate_slow_multiple: float = 2.5
    cost_slow_multiple: float = 3.0  # cost per call is noisier than the call count
    rate_fast_hold_s: float = 5.0
    rate_slow_hold_s: float = 120.0
    rate_floor_rps: float = 0.5  # never alarm below this request rate
    cost_floor_pico_per_s: float = to_pico("1.00") / HOUR  # nor below $1 an hour
    peak_half_life_s: float = 24 * HOUR  # counted in active time (idle gaps capped)
    peak_gap_cap_s: float = 300.0
    peak_growth_per_day: float = 1.2  # baselines grow at most +20% a day outside learning
    rate_persist_s: float = 600.0  # rate alarm unbroken this long after throttle: disable
    # --- error storm with a fleet-wide exception -------------------------------------------
    error_window_s: float = 300.0  # five one-minute buckets
    error_min_requests: int = 20
    error_fraction: float = 0.5
    error_hold_s: float = 60.0
    fleet_spike_fraction: float = 0.3  # an agent "spikes" at >= 30% errors of >= 5 requests
    fleet_spike_min_requests: int = 5
    fleet_fraction: float = 0.3  # >= 30% of recently active agents spiking: upstream's fault
    fleet_min_agents: int = 3
    # --- jump to a much more expensive model ------------------------------------------------
    model_jump_factor: float = 5.0  # price per token vs the agent's usual ceiling
    model_jump_calls: int = 10  # jump calls within the window: throttle
    model_jump_window_s: float = 600.0
    model_max_tracked: int = 16
    # --- slow cost creep: CUSUM on log(cost per call / frozen reference), daily -------------
    creep_ref_days: int = 7
    creep_min_calls: int = 50
    creep_k: float = 0.05
    creep_h: float = 0.5
    creep_escalate_days: float = 7.0  # unacknowledged creep becomes a medium event
    # --- source fingerprints (credential sharing, stolen token) -----------------------------
    source_window_s: float = 600.0
    source_min_calls: int = 10
    source_adopt_s: float = HOUR  # a new source alone this long becomes known
    source_max: int = 16
    # --- identity mismatches on one credential ----------------------------------------------
    mismatch_strikes: int = 5
    mismatch_window_s: float = 600.0
    # --- Beta score with forgetting ---------------------------------------------------------
    score_half_life_h: float = 168.0
    # --- hysteresis ------------------------------------------------------------------------
    demote_trusted_mean: float = 0.70
    demote_standard_mean: float = 0.45
    promote_standard_lower: float = 0.60
    promote_trusted_lower: float = 0.85
    promote_standard_dwell_s: float = 24 * HOUR
    promote_trusted_dwell_s: float = 72 * HOUR
    min_dwell_s: float = HOUR
    promotion_gap_s: float = 24 * HOUR
    quiet_before_promotion_s: float = 24 * HOUR  # no medium-or-worse event in this long
    trusted_min_age_s: float = 14 * DAY
    flap_changes: int = 3  # more than this many automatic changes in the window: lock
    flap_window_s: float = 7 * DAY
    flap_lock_s: float = 7 * DAY
    # --- learning mode ----------------------------------------------------------------------
    learning_s: float = 7 * DAY
    learning_min_active_hours: int = 24
    warmup_active_hours: int = 1  # statistical detectors stay silent before this
    # --- operators and bookkeeping -----------------------------------------------------------
    pin_default_ttl_s: float = 24 * HOUR
    rebaseline_learning_s: float = DAY  # after rebaseline, statistical detectors only alert
    alert_dedup_s: float = HOUR
    events_kept: int = 20

    def multiplier(self, tier: Tier) -> float:
        return self.tier_multipliers[tier.value]
