"""Error-rate storms per agent, and the fleet view that excuses upstream outages.

Per agent, five one-minute buckets count requests, errors the agent caused
(status >= 400 without the upstream-fault flag; an upstream 429 counts, because a
looping agent provokes them) and all errors. A storm is >= 50% agent-caused errors
among >= 20 requests in the last five minutes, held for a minute.

The fleet exception (trust.md 2.2 #10): an agent *spikes* when >= 30% of its last
five minutes' requests (at least 5 of them) failed for any reason. When >= 30% of the
agents that made 5+ requests in the last five minutes spike together, the provider or
the gateway is to blame and a storm only raises an info alert. The fleet keeps one dict
of last-active minutes (O(1) per request); the share is computed from the agents' own
windows on demand, at most once a minute, and only when some agent's storm is about to
act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentctl.trust.config import TrustConfig
from agentctl.trust.signals import STATISTICAL, Signal

BUCKETS = 5


@dataclass(slots=True)
class ErrorWindow:
    minutes: list[int] = field(default_factory=lambda: [-1] * BUCKETS)
    requests: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    agent_errors: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    all_errors: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    storm_since: float | None = None

    def observe(
        self, agent_error: bool, any_error: bool, now: float, cfg: TrustConfig
    ) -> Signal | None:
        minute = int(now // 60)
        i = minute % BUCKETS
        if self.minutes[i] != minute:
            self.minutes[i] = minute
            self.requests[i] = self.agent_errors[i] = self.all_errors[i] = 0
        self.requests[i] += 1
        if agent_error:
            self.agent_errors[i] += 1
        if any_error:
            self.all_errors[i] += 1
        elif self.storm_since is None:
            return None  # a success cannot start a storm: skip the sums
        n, bad, errs = self.totals(minute)
        if n >= cfg.error_min_requests and bad >= cfg.error_fraction * n:
            if self.storm_since is None:
                self.storm_since = now
        else:
            self.storm_since = None
            return None
        if now - self.storm_since < cfg.error_hold_s:
            return None
        share = bad / n
        return Signal(
            "error_storm",
            STATISTICAL,
            share,
            cfg.error_fraction,
            self.storm_since,
            {
                "requests": n,
                "agent_errors": bad,
                "all_errors": errs,
                "window_s": cfg.error_window_s,
            },
        )

    def totals(self, minute: int) -> tuple[int, int, int]:
        n = bad = errs = 0
        for j in range(BUCKETS):
            if self.minutes[j] > minute - BUCKETS:
                n += self.requests[j]
                bad += self.agent_errors[j]
                errs += self.all_errors[j]
        return n, bad, errs

    def state(self, now: float) -> dict[str, Any]:
        n, bad, errs = self.totals(int(now // 60))
        return {
            "requests_5m": n,
            "agent_errors_5m": bad,
            "all_errors_5m": errs,
            "storm_since": self.storm_since,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "minutes": list(self.minutes),
            "requests": list(self.requests),
            "agent_errors": list(self.agent_errors),
            "all_errors": list(self.all_errors),
            "storm_since": self.storm_since,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> ErrorWindow:
        return cls(
            list(data["minutes"]),
            list(data["requests"]),
            list(data["agent_errors"]),
            list(data["all_errors"]),
            data["storm_since"],
        )


@dataclass(slots=True)
class Fleet:
    active: dict[str, int] = field(default_factory=dict)  # agent -> last active minute
    _cached_minute: int = -1
    _cached_share: float = 0.0
    _cached_eligible: int = 0

    def note(self, agent: str, now: float) -> None:
        self.active[agent] = int(now // 60)

    def share(
        self, now: float, window_of: Callable[[str], ErrorWindow | None], cfg: TrustConfig
    ) -> tuple[float, int]:
        """Share of eligible agents spiking, and how many were eligible (recomputed per minute).

        Eligible: active in the last five minutes with >= `fleet_spike_min_requests` there,
        so quiet agents that could not show a spike do not dilute the share.
        """
        minute = int(now // 60)
        if minute != self._cached_minute:
            horizon = minute - BUCKETS
            eligible = spiking = 0
            for agent, last in self.active.items():
                window = window_of(agent) if last > horizon else None
                if window is None:
                    continue
                n, _, errs = window.totals(minute)
                if n >= cfg.fleet_spike_min_requests:
                    eligible += 1
                    spiking += errs >= cfg.fleet_spike_fraction * n
            self._cached_minute, self._cached_eligible = minute, eligible
            self._cached_share = spiking / eligible if eligible else 0.0
            if len(self.active) > 4 * max(eligible, 64):  # forget long-idle agents now and then
                self.active = {a: m for a, m in self.active.items() if m > horizon}
        return self._cached_share, self._cached_eligible

    def is_outage(
        self, now: float, window_of: Callable[[str], ErrorWindow | None], cfg: TrustConfig
    ) -> bool:
        share, eligible = self.share(now, window_of, cfg)
        return eligible >= cfg.fleet_min_agents and share >= cfg.fleet_fraction

    def to_state(self) -> dict[str, Any]:
        return {"active": dict(self.active)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Fleet:
        return cls(dict(data["active"]))
