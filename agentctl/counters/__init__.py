"""Hot counters behind the `Counters` protocol; the backend is chosen by URL.

`memory://` is built in; `redis://HOST:PORT/DB[?prefix=P]` lives in
`agentctl.counters.redis`, imported lazily so the driver stays an optional extra.
`agentctl.counters.failover.guard` wraps backends that can become unreachable.
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


def open_counters(url: str, *, prefix: str | None = None, timeout: float = 0.5) -> Counters:
    """`prefix` and `timeout` (seconds per call) apply to Redis; `?prefix=` in the URL wins."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme == "memory":
        from agentctl.counters.memory import MemoryCounters

        return MemoryCounters()
    if scheme in ("redis", "rediss", "unix"):
        try:
            from agentctl.counters.redis import RedisCounters
        except ImportError as exc:
            raise ConfigError(
                "Redis counters need the driver: pip install 'agentctl[redis]'"
            ) from exc
        return RedisCounters(url, prefix=prefix, timeout=timeout)
    raise ConfigError(f"unknown counters URL '{url}'; expected memory:// or redis://HOST:PORT")
