"""Time-decayed request and cost rates against the agent's own decaying peaks.

Per request, with dt since the last one: `r <- r * exp(-dt/tau) + amount/tau`, an
exponentially weighted rate with time constant tau (trust.md 2.2 #1). Two time
constants run side by side: 30 s reacts to a 38x loop in seconds, 120 s smooths
Poisson noise enough to see a sustained 6x loop against a tighter multiple.

The baseline is the agent's own peak of the *same* statistic, a running maximum that
decays with a half-life counted in *active* time (each idle gap counts at most
`peak_gap_cap_s`, advanced in `TrustEngine.before_request`), so a nightly job or a weekly batch
keeps its peak across the day or week it sleeps while month-end bursts fade after
about a day of activity. Peaks never learn while their alarm is up (an anomaly must
not become the baseline) and, outside learning mode, grow at most
`peak_growth_per_day` (+20%) a day, so a slowly escalating loop cannot drag its own
baseline up. The state is eleven floats; the hot path costs three `exp` calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from agentctl.trust.config import DAY, TrustConfig
from agentctl.trust.signals import STATISTICAL, Signal

_LN2 = math.log(2.0)


@dataclass(slots=True)
class RateDetector:
    """Alarm when a decayed rate holds above multiple x its own peak (and a floor)."""

    name: str  # detector id: request_rate or cost_rate
    floor: float
    slow_multiple: float
    fast: float = 0.0  # decayed rates, per second
    slow: float = 0.0
    at: float = 0.0  # wall time of the last update
    peak_fast: float = 0.0  # peaks as of active-clock reading peak_at
    peak_slow: float = 0.0
    peak_at: float = 0.0
    anchor_fast: float = 0.0  # peaks at the start of the current growth day
    anchor_slow: float = 0.0
    anchor_at: float = 0.0
    fast_since: float | None = None
    slow_since: float | None = None
    last_peak_fast: float = 0.0  # as computed by the last observe (not persisted)

    def peaks(self, clock: float, cfg: TrustConfig) -> tuple[float, float]:
        d = math.exp(-_LN2 * (clock - self.peak_at) / cfg.peak_half_life_s)
        return self.peak_fast * d, self.peak_slow * d

    def rates(self, now: float, cfg: TrustConfig) -> tuple[float, float]:
        dt = now - self.at
        if dt <= 0.0:
            return self.fast, self.slow
        return (
            self.fast * math.exp(-dt / cfg.rate_fast_tau_s),
            self.slow * math.exp(-dt / cfg.rate_slow_tau_s),
        )

    def thresholds(self, clock: float, cfg: TrustConfig) -> tuple[float, float]:
        pf, ps = self.peaks(clock, cfg)
        floor = self.floor
        return max(cfg.rate_fast_multiple * pf, floor), max(self.slow_multiple * ps, floor)

    def observe(
        self,
        amount: float,
        now: float,
        clock: float,
        cfg: TrustConfig,
        learning: bool,
        armed: bool,
    ) -> Signal | None:
        """Update with one request's amount. `armed` False (warm-up) learns silently."""
        dt = now - self.at
        if dt > 0.0:
            self.fast *= math.exp(-dt / cfg.rate_fast_tau_s)
            self.slow *= math.exp(-dt / cfg.rate_slow_tau_s)
            self.at = now
        rf = self.fast = self.fast + amount / cfg.rate_fast_tau_s
        rs = self.slow = self.slow + amount / cfg.rate_slow_tau_s
        d = math.exp(-_LN2 * (clock - self.peak_at) / cfg.peak_half_life_s)
        pf, ps = self.peak_fast * d, self.peak_slow * d
        self.last_peak_fast = pf
        floor = self.floor
        tf = cfg.rate_fast_multiple * pf
        if tf < floor:
            tf = floor
        ts = self.slow_multiple * ps
        if ts < floor:
            ts = floor
        above_f, above_s = rf > tf, rs > ts
        if above_f:
            if self.fast_since is None:
                self.fast_since = now
        elif self.fast_since is not None:
            self.fast_since = None
        if above_s:
            if self.slow_since is None:
                self.slow_since = now
        elif self.slow_since is not None:
            self.slow_since = None
        if (rf > pf or rs > ps) and (learning or not armed or not (above_f or above_s)):
            self._learn(rf, rs, pf, ps, now, clock, cfg, capped=not learning)
        if not armed:
            return None
        if self.fast_since is not None and now - self.fast_since >= cfg.rate_fast_hold_s:
            return self._signal("fast", rf, tf, self.fast_since)
        if self.slow_since is not None and now - self.slow_since >= cfg.rate_slow_hold_s:
            return self._signal("slow", rs, ts, self.slow_since)
        return None

    def _learn(
        self,
        rf: float,
        rs: float,
        pf: float,
        ps: float,
        now: float,
        clock: float,
        cfg: TrustConfig,
        *,
        capped: bool,
    ) -> None:
        if not capped:  # learning: the anchor follows, so the cap starts from what was learnt
            self.anchor_fast, self.anchor_slow, self.anchor_at = max(pf, rf), max(ps, rs), now
        elif now - self.anchor_at >= DAY:
            self.anchor_fast, self.anchor_slow, self.anchor_at = pf, ps, now
        if capped:
            if self.anchor_fast > 0.0:
                rf = min(rf, max(pf, self.anchor_fast * cfg.peak_growth_per_day))
            if self.anchor_slow > 0.0:
                rs = min(rs, max(ps, self.anchor_slow * cfg.peak_growth_per_day))
        self.peak_fast, self.peak_slow, self.peak_at = max(pf, rf), max(ps, rs), clock

    def alarm_since(self) -> float | None:
        times = [t for t in (self.fast_since, self.slow_since) if t is not None]
        return min(times) if times else None

    def _signal(self, which: str, value: float, threshold: float, since: float) -> Signal:
        evidence = {"window": which, "rate_per_s": value, "threshold_per_s": threshold}
        return Signal(self.name, STATISTICAL, value, threshold, since, evidence)

    def reset_baseline(self) -> None:
        self.peak_fast = self.peak_slow = 0.0
        self.anchor_fast = self.anchor_slow = self.anchor_at = 0.0
        self.fast_since = self.slow_since = None

    def state(self, now: float, clock: float, cfg: TrustConfig) -> dict[str, Any]:
        rf, rs = self.rates(now, cfg)
        pf, ps = self.peaks(clock, cfg)
        tf, ts = self.thresholds(clock, cfg)
        return {
            "fast_rate": rf,
            "slow_rate": rs,
            "fast_peak": pf,
            "slow_peak": ps,
            "fast_threshold": tf,
            "slow_threshold": ts,
            "alarm_since": self.alarm_since(),
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "rates": [self.fast, self.slow, self.at],
            "peaks": [self.peak_fast, self.peak_slow, self.peak_at],
            "anchors": [self.anchor_fast, self.anchor_slow, self.anchor_at],
            "since": [self.fast_since, self.slow_since],
        }

    @classmethod
    def from_state(
        cls, name: str, floor: float, slow_multiple: float, data: dict[str, Any]
    ) -> RateDetector:
        det = cls(name, floor, slow_multiple)
        det.fast, det.slow, det.at = data["rates"]
        det.peak_fast, det.peak_slow, det.peak_at = data["peaks"]
        det.anchor_fast, det.anchor_slow, det.anchor_at = data["anchors"]
        det.fast_since, det.slow_since = data["since"]
        return det
