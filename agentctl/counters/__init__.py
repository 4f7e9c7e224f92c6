"""Hot counters behind the `Counters` protocol; the backend is chosen by URL.

`memory://` is built in; `redis://` (issue 7) will live in `agentctl.counters.redis`,
imported lazily so the driver stays an optional extra.
"""

from __future__ import annotations

from agentctl.counters.base import (
    Amounts,
    Bucket,
    BucketState,
    Counters,
    Exceeded,
    Limits,
    RateResult,
    ReserveResult,
    SettleResult,
    SlotResult,
    WindowSpec,
    WindowUsage,
)
from agentctl.errors import ConfigError

__all__ = [
    "Amounts",
    "Bucket",
    "BucketState",
    "Counters",
    "Exceeded",
    "Limits",
    "RateResult",
    "ReserveResult",
    "SettleResult",
    "SlotResult",
    "WindowSpec",
    "WindowUsage",
    "open_counters",
]


def open_counters(url: str) -> Counters:
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme == "memory":
        from agentctl.counters.memory import MemoryCounters

        return MemoryCounters()
    if scheme in ("redis", "rediss"):
        raise ConfigError(f"counters backend '{scheme}://' is not available yet; use memory://")
    raise ConfigError(f"unknown counters URL '{url}'; expected memory:// or redis://HOST:PORT")
