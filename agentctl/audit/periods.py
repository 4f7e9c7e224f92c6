"""Calendar buckets (local days or hours) in a time zone, computed in Python.

SQL never does date arithmetic here, so SQLite and PostgreSQL agree and DST is
handled by `zoneinfo`: a bucket is identified by its label (local date `2026-03-29`,
or local hour with its offset `2026-10-25T02:00+02:00`, so the repeated hour of a
fall-back has two distinct labels). Records are bucketed by their timestamp.

Reports read whole UTC hours from the rollup: `hour_label()` says whether a UTC hour
lies inside a single bucket (always, for zones on whole-hour offsets) and `split()`
cuts any other interval at the bucket boundaries inside it, to the microsecond.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agentctl.store.rollups import HOUR_US

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_US = 60_000_000
UNITS = ("day", "hour")


def to_datetime(us: int, tz: ZoneInfo | None = None) -> datetime:
    moment = EPOCH + timedelta(microseconds=us)
    return moment.astimezone(tz) if tz is not None else moment


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


class Buckets:
    """Bucket labels for `unit` ('day', 'hour' or None for a single bucket) in `tz`."""

    def __init__(self, unit: str | None, tz: ZoneInfo) -> None:
        if unit not in (None, *UNITS):
            raise ValueError(f"unknown bucket unit {unit!r}")
        self.unit = unit
        self.tz = tz
        self._hours: dict[int, str | None] = {}

    def label(self, us: int) -> str:
        if self.unit is None:
            return ""
        local = to_datetime(us, self.tz)
        if self.unit == "day":
            return local.date().isoformat()
        return local.replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")

    def hour_label(self, hour: int) -> str | None:
        """The label of UTC hour `hour` if all of it is in one bucket, else None."""
        if self.unit is None:
            return ""
        cached = self._hours.get(hour, "?")
        if cached != "?":
            return cached
        start = hour * HOUR_US
        first, last = to_datetime(start, self.tz), to_datetime(start + HOUR_US - 1, self.tz)
        offset = first.utcoffset()
        if offset is not None and offset == last.utcoffset():
            # A constant offset: local time runs on without a jump through this hour.
            whole = not offset % timedelta(hours=1)
            one = whole or (self.unit == "day" and first.date() == last.date())
            result: str | None = self.label(start) if one else None
        else:
            parts = self.split(start, start + HOUR_US)
            result = parts[0][2] if len(parts) == 1 else None
        self._hours[hour] = result
        return result

    def split(self, start: int, end: int) -> list[tuple[int, int, str]]:
        """[start, end) cut into (from, to, label) pieces, each inside one bucket.

        Probes every whole minute, then finds each boundary to the microsecond."""
        if end <= start:
            return []
        if self.unit is None:
            return [(start, end, "")]
        probes = list(range((start // MINUTE_US + 1) * MINUTE_US, end, MINUTE_US))
        if not probes or probes[-1] != end - 1:
            probes.append(end - 1)
        pieces: list[tuple[int, int, str]] = []
        cur_start, cur_label, prev = start, self.label(start), start
        for at in probes:
            if at <= prev:
                continue
            if self.label(at) != cur_label:
                boundary = self._boundary(prev, at, cur_label)
                pieces.append((cur_start, boundary, cur_label))
                cur_start, cur_label = boundary, self.label(boundary)
            prev = at
        pieces.append((cur_start, end, cur_label))
        return pieces

    def _boundary(self, lo: int, hi: int, label: str) -> int:
        """First instant in (lo, hi] whose label differs from `label` (label(lo) == label)."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.label(mid) == label:
                lo = mid
            else:
                hi = mid
        return hi


def offset_segments(tz: ZoneInfo, first_hour: int, end_hour: int) -> list[tuple[int, int]] | None:
    """[(end_hour, offset_hours)] covering [first_hour, end_hour) if every UTC offset there
    is a whole number of hours and changes only on a UTC hour; else None."""

    def offset_at(us: int) -> int:
        delta = to_datetime(us, tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def at_hour(hour: int) -> int:
        return offset_at(hour * HOUR_US)

    segments: list[tuple[int, int]] = []
    current = at_hour(first_hour)
    hour = first_hour
    while hour < end_hour:
        step = min(hour + 24, end_hour)
        if at_hour(step - 1) == current and offset_at(step * HOUR_US - 1) == current:
            hour = step
            continue
        lo, hi = hour - 1, step - 1  # invariant: at_hour(lo) == current != at_hour(hi)
        if at_hour(hi) == current:
            return None  # the offset changes inside the window's last hour
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if at_hour(mid) == current else (lo, mid)
        if offset_at(hi * HOUR_US - 1) != current or current % 3600:
            return None  # the offset changes inside an hour
        segments.append((hi, current // 3600))
        hour, current = hi, at_hour(hi)
    if current % 3600:
        return None
    segments.append((end_hour, current // 3600))
    return segments
