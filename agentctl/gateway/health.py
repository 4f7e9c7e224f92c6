"""One upstream's health: a circuit breaker fed by real requests.

    healthy --(`failures` consecutive failures)--> ejected (for a backoff)
    ejected --(backoff over, next request admitted)--> half-open: that request is the probe
    half-open --probe succeeds--> healthy        --probe fails--> ejected, backoff doubled

A failure is a connect error, a timeout, a 5xx or a 429 from the upstream, or a stream
that broke after its first byte; any other answer (a 400 is the client's problem) is a
success. A request the client abandoned says nothing about the upstream (`None`).

The probe is a real request, not a synthetic health check: it needs no endpoint the
provider may not have, and a failed probe costs its client only a fallback to the next
member of the pool (it has not sent a byte yet). While a probe is in flight, no other
request is sent to the upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentctl.config import HealthSettings

HEALTHY, EJECTED, HALF_OPEN = "healthy", "ejected", "half-open"


class Health:
    def __init__(
        self, settings: HealthSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.state = HEALTHY
        self.failures = 0  # consecutive
        self.ejections = 0  # consecutive, for the backoff
        self.until = 0.0  # ejected until (clock time)
        self.probing = False
        self.total_ejections = 0

    def available(self, now: float | None = None) -> bool:
        """May a new request be sent here (possibly as the probe)?"""
        if self.state == HEALTHY:
            return True
        if self.probing:
            return False
        now = self.clock() if now is None else now
        return now >= self.until

    def start(self, now: float | None = None) -> bool:
        """A request is being sent; True when it is the half-open probe."""
        if self.state == HEALTHY or self.probing:
            return False
        now = self.clock() if now is None else now
        if now < self.until:
            return False  # panic routing: every member is ejected, so this one is used anyway
        self.state, self.probing = HALF_OPEN, True
        return True

    def record(self, ok: bool | None, *, probe: bool, now: float | None = None) -> None:
        if probe:
            self.probing = False
        if ok is None:
            return
        now = self.clock() if now is None else now
        if ok:
            self.failures = 0
            # Any success heals: a probe, a half-open try, or an ejected upstream used as
            # the last resort (the only member) that answered fine.
            self.state, self.ejections = HEALTHY, 0
            return
        self.failures += 1
        if probe or (
            self.state == HEALTHY
            and self.settings.failures
            and self.failures >= self.settings.failures
        ):
            self.eject(now)

    def eject(self, now: float) -> None:
        self.ejections += 1
        self.total_ejections += 1
        backoff = self.settings.eject_seconds * 2 ** (self.ejections - 1)
        self.until = now + min(backoff, self.settings.max_eject_seconds)
        self.state, self.probing = EJECTED, False

    def remaining(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        return max(0.0, self.until - now) if self.state != HEALTHY else 0.0

    def view(self) -> dict[str, Any]:
        state = self.state
        if state == EJECTED and not self.probing and self.remaining() == 0:
            state = HALF_OPEN  # the next request will probe it
        return {
            "state": state,
            "consecutive_failures": self.failures,
            "ejections": self.total_ejections,
            "ejected_for_s": round(self.remaining(), 3),
            "probing": self.probing,
        }
