"""Calendar windows (hour, day, month) in an IANA timezone.

A window is the half-open interval [start, end) in epoch seconds, aligned to local
calendar boundaries: a day is local midnight to local midnight, so it lasts 23 or 25
hours across a DST change, and a month runs from the 1st to the 1st. Hour windows are
real hours aligned to local hour boundaries; in the repeated hour of a fall-back
transition the two hours are different windows, told apart by the UTC offset in the
id. Ids are readable and stable across processes and restarts (`2024-03-10`,
`2024-03`, `2024-11-03T01-0400`); counter keys embed them with the zone name, so
changing a policy's timezone starts fresh windows rather than mixing two calendars.

`WindowClock` caches the current window per (period, zone) until it ends, so the
hot path does no calendar arithmetic on most requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["hour", "day", "month"]
PERIODS: tuple[Period, ...] = ("hour", "day", "month")
ADJECTIVE: dict[str, str] = {"hour": "hourly", "day": "daily", "month": "monthly"}
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CalendarWindow:
    period: Period
    zone: str
    window_id: str
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive: the reset time

    def contains(self, ts: float) -> bool:
        return self.start <= ts < self.end

    def reset_at(self) -> datetime:
        return datetime.fromtimestamp(self.end, zone(self.zone))

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.end - now)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def window_at(period: Period, now: float, zone_name: str = "UTC") -> CalendarWindow:
    tz = zone(zone_name)
    local = datetime.fromtimestamp(now, tz)
    if period == "hour":
        begin = local.replace(minute=0, second=0, microsecond=0)
        start = begin.timestamp()
        offset = begin.strftime("%z")
        return CalendarWindow(
            period, zone_name, f"{begin:%Y-%m-%dT%H}{offset}", start, start + 3600.0
        )
    if period == "day":
        begin = datetime(local.year, local.month, local.day, tzinfo=tz)
        after = begin.date() + timedelta(days=1)
        end = datetime(after.year, after.month, after.day, tzinfo=tz)
        return CalendarWindow(
            period, zone_name, f"{begin:%Y-%m-%d}", begin.timestamp(), end.timestamp()
        )
    if period == "month":
        begin = datetime(local.year, local.month, 1, tzinfo=tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=tz)
        return CalendarWindow(
            period, zone_name, f"{begin:%Y-%m}", begin.timestamp(), end.timestamp()
        )
    raise ValueError(f"unknown window period {period!r}")


def window_edges(now: float, zones: Iterable[str]) -> list[float]:
    """Every start and end of the windows current at `now` in `zones`, sorted.

    Between two consecutive edges every record is either inside a given current window
    or outside it, so usage summed per edge-to-edge segment rebuilds every window
    exactly: the gateway seeds its quotas from a few rows per agent, not every record."""
    edges: set[float] = set()
    for name in zones:
        for period in PERIODS:
            window = window_at(period, now, name)
            edges.update((window.start, window.end))
    return sorted(edges)


class WindowClock:
    """Current windows per (period, zone), recomputed only when one ends."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], CalendarWindow] = {}

    def window(self, period: Period, now: float, zone_name: str) -> CalendarWindow:
        key = (period, zone_name)
        cached = self._current.get(key)
        if cached is not None and cached.start <= now < cached.end:
            return cached
        fresh = window_at(period, now, zone_name)
        if cached is None or fresh.start >= cached.start:
            self._current[key] = fresh  # never move the cache backwards in time
        return fresh


def go_duration(seconds: float) -> str:
    """Go's time.Duration format, as OpenAI's x-ratelimit-reset-* headers: 1s, 6m0s, 20ms."""
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}" if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
