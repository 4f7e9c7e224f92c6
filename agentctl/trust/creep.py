"""Slow cost creep: a one-sided CUSUM against a frozen reference, run once a day.

Creep (a context window that grows a few percent a day) never looks anomalous from
one day to the next, and any baseline that keeps adapting follows it (trust.md 2.2 #6:
an adaptive EWMA noticed 3%/day on day 20, the frozen reference on day 13). So the
reference is the median cost per call over the agent's first `creep_ref_days`
qualifying days (>= `creep_min_calls` calls) and only `rebaseline` moves it.

Each closed day: `z = ln(cost_per_call / reference)`, `S = max(0, S + z - k)`;
`S > h` raises a weak alert and resets S. Cost per call, not spend per day, so a
month-end doubling or a +50% feature launch (more calls, same calls) is not creep.
Creep still unacknowledged (no rebaseline) after `creep_escalate_days` becomes a
medium event, which demotes a trusted agent to standard. Day totals are exact integers.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from agentctl.trust.config import DAY, TrustConfig
from agentctl.trust.signals import MEDIUM, WEAK, Signal


@dataclass(slots=True)
class CreepCusum:
    day: int = -1
    day_cost_pico: int = 0
    day_calls: int = 0
    pending: list[float] = field(default_factory=list)  # reference days not yet frozen
    reference: float | None = None
    cusum: float = 0.0
    alarm_since: float | None = None
    escalated: bool = False
    last_cost_per_call: float = 0.0

    def add(self, cost_pico: int, now: float) -> None:
        day = int(now // DAY)
        if day != self.day and self.day >= 0:
            return  # the caller rolls days first; never mix two days
        self.day = day
        self.day_cost_pico += cost_pico
        self.day_calls += 1

    def roll(self, now: float, cfg: TrustConfig) -> Signal | None:
        """Close the current day if `now` is past it; at most one signal."""
        day = int(now // DAY)
        if self.day < 0:
            self.day = day
            return None
        if day == self.day:
            return self._escalation(now, cfg)
        signal = self._close(now, cfg)
        self.day, self.day_cost_pico, self.day_calls = day, 0, 0
        return self._escalation(now, cfg) or signal

    def _close(self, now: float, cfg: TrustConfig) -> Signal | None:
        if self.day_calls < cfg.creep_min_calls:
            return None
        cpc = self.day_cost_pico / self.day_calls
        self.last_cost_per_call = cpc
        if self.reference is None:
            self.pending.append(cpc)
            if len(self.pending) >= cfg.creep_ref_days:
                self.reference = statistics.median(self.pending)
                self.pending = []
            return None
        if self.reference <= 0 or cpc <= 0:
            return None
        z = math.log(cpc / self.reference)
        self.cusum = max(0.0, self.cusum + z - cfg.creep_k)
        if self.cusum <= cfg.creep_h:
            return None
        value, self.cusum = self.cusum, 0.0
        if self.alarm_since is None:
            self.alarm_since = now
        return Signal(
            "cost_creep",
            WEAK,
            value,
            cfg.creep_h,
            self.alarm_since,
            {
                "cost_per_call_pico": round(cpc),
                "reference_pico": round(self.reference),
                "ratio": round(cpc / self.reference, 3),
            },
        )

    def _escalation(self, now: float, cfg: TrustConfig) -> Signal | None:
        if (
            self.alarm_since is None
            or self.escalated
            or now - self.alarm_since < cfg.creep_escalate_days * DAY
        ):
            return None
        self.escalated = True
        return Signal(
            "cost_creep",
            MEDIUM,
            (now - self.alarm_since) / DAY,
            cfg.creep_escalate_days,
            self.alarm_since,
            {"unacknowledged_days": round((now - self.alarm_since) / DAY, 1)},
        )

    def reset_reference(self) -> None:
        self.pending, self.reference, self.cusum = [], None, 0.0
        self.alarm_since, self.escalated = None, False

    def state(self) -> dict[str, Any]:
        return {
            "reference_pico_per_call": self.reference,
            "reference_days_pending": len(self.pending),
            "cusum": self.cusum,
            "last_cost_per_call_pico": self.last_cost_per_call,
            "alarm_since": self.alarm_since,
            "escalated": self.escalated,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "day_cost_pico": self.day_cost_pico,
            "day_calls": self.day_calls,
            "pending": list(self.pending),
            "reference": self.reference,
            "cusum": self.cusum,
            "alarm_since": self.alarm_since,
            "escalated": self.escalated,
            "last_cost_per_call": self.last_cost_per_call,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> CreepCusum:
        return cls(
            int(data["day"]),
            int(data["day_cost_pico"]),
            int(data["day_calls"]),
            [float(x) for x in data["pending"]],
            data["reference"],
            float(data["cusum"]),
            data["alarm_since"],
            bool(data["escalated"]),
            float(data["last_cost_per_call"]),
        )
