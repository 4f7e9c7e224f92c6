"""The Beta trust score with forgetting (Josang & Ismail 2002; trust.md 4.4).

Evidence accrues per *active agent-hour* (an hour with at least one request): a clean
hour adds one good observation, an event adds its severity weight to the bad side.
Every hour, active or not, both sides are multiplied by `lambda = 2**(-1/half_life_h)`,
so trust drifts back towards uncertainty without fresh evidence. The mean `E` demotes;
the lower bound `L` (normal approximation to the 5th percentile) promotes, so a few
clean hours never earn trust. Hard evidence acts directly and does not wait for this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z_95 = 1.645


@dataclass(slots=True)
class BetaScore:
    good: float = 0.0
    bad: float = 0.0

    @property
    def mean(self) -> float:
        return (self.good + 1.0) / (self.good + self.bad + 2.0)

    @property
    def lower(self) -> float:
        e = self.mean
        return e - Z_95 * math.sqrt(e * (1.0 - e) / (self.good + self.bad + 3.0))

    def forget(self, hours: int, half_life_h: float) -> None:
        if hours > 0:
            factor = 2.0 ** (-hours / half_life_h)
            self.good *= factor
            self.bad *= factor

    def to_state(self) -> dict[str, Any]:
        return {"good": self.good, "bad": self.bad}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> BetaScore:
        return cls(float(data["good"]), float(data["bad"]))
