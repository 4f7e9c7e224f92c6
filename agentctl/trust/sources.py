"""Source fingerprints per credential: the signal a stolen or shared token leaves.

The gateway passes a coarse client fingerprint per request (recommended: client IP
/24 or /64 plus the User-Agent family, hashed), so a horizontally scaled agent has one
fingerprint. A bearer token carries no other trace of who holds it; what a thief cannot
hide is a *second* source used while the owner's known source is still active.

* Sources seen during learning mode are known. Afterwards a new source raises a weak
  alert on its first request.
* A new source used alone for `source_adopt_s` (the known ones silent since it
  appeared) becomes known: that is a migration (new host, new NAT), not a theft.
* A new source with >= `source_min_calls` requests, while known sources made
  >= `source_min_calls` requests *after* it appeared, is credential sharing: a
  statistical anomaly (throttle). A clean cutover or a brief deploy overlap never
  interleaves that much.

Bounded: at most `source_max` known and 8 new sources per agent; the fast path for a
known source is one dict write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentctl.trust.config import TrustConfig
from agentctl.trust.signals import STATISTICAL, WEAK, Signal

MAX_FRESH = 8


@dataclass(slots=True)
class SourceTracker:
    known: dict[str, float] = field(default_factory=dict)  # source -> last seen
    # source -> [first_seen, last_seen, calls, known_calls_since_first_seen]
    fresh: dict[str, list[float]] = field(default_factory=dict)
    last_known_at: float = 0.0

    def observe(
        self, source: str, now: float, cfg: TrustConfig, *, learning: bool
    ) -> Signal | None:
        if not source:
            return None
        if source in self.known:
            self.known[source] = now
            self.last_known_at = now
            for entry in self.fresh.values():
                entry[3] += 1
            return None
        if learning or not self.known:
            self._adopt(source, now, cfg)
            return None
        found = self.fresh.get(source)
        if found is None:
            if len(self.fresh) >= MAX_FRESH:
                del self.fresh[min(self.fresh, key=lambda s: self.fresh[s][1])]
            self.fresh[source] = [now, now, 1.0, 0.0]
            return Signal(
                "source",
                WEAK,
                1.0,
                0.0,
                now,
                {"source": source, "new_source": True, "known_sources": len(self.known)},
            )
        entry = found
        entry[1] = now
        entry[2] += 1
        first, _, calls, known_calls = entry
        if now - first >= cfg.source_adopt_s and self.last_known_at < first:
            self._adopt(source, now, cfg)
            return None
        if calls >= cfg.source_min_calls and known_calls >= cfg.source_min_calls:
            return Signal(
                "source",
                STATISTICAL,
                calls,
                float(cfg.source_min_calls),
                first,
                {
                    "source": source,
                    "new_source_calls": int(calls),
                    "known_source_calls_meanwhile": int(known_calls),
                    "known_sources": sorted(self.known)[:4],
                },
            )
        return None

    def _adopt(self, source: str, now: float, cfg: TrustConfig) -> None:
        self.fresh.pop(source, None)
        if len(self.known) >= cfg.source_max:
            del self.known[min(self.known, key=lambda s: self.known[s])]
        self.known[source] = now
        self.last_known_at = now

    def state(self) -> dict[str, Any]:
        return {
            "known": sorted(self.known),
            "new": {
                s: {"first_seen": e[0], "calls": int(e[2]), "known_calls_meanwhile": int(e[3])}
                for s, e in self.fresh.items()
            },
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "known": dict(self.known),
            "fresh": {s: list(e) for s, e in self.fresh.items()},
            "last_known_at": self.last_known_at,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> SourceTracker:
        return cls(
            {s: float(t) for s, t in data["known"].items()},
            {s: [float(x) for x in e] for s, e in data["fresh"].items()},
            float(data["last_known_at"]),
        )
