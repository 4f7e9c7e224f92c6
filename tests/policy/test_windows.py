"""Calendar windows: hour, day and month boundaries, month ends, DST, Go durations."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agentctl.policy.windows import WindowClock, go_duration, window_at


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def iso(ts: float, zone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).isoformat()


@pytest.mark.parametrize(
    ("period", "now", "zone", "window_id", "start", "end"),
    [
        (
            "hour",
            "2024-03-10T12:59:59",
            "UTC",
            "2024-03-10T12+0000",
            "2024-03-10T12:00:00+00:00",
            "2024-03-10T13:00:00+00:00",
        ),
        (
            "day",
            "2024-03-10T23:59:59",
            "UTC",
            "2024-03-10",
            "2024-03-10T00:00:00+00:00",
            "2024-03-11T00:00:00+00:00",
        ),
        (
            "day",
            "2024-03-11T00:00:00",
            "UTC",
            "2024-03-11",
            "2024-03-11T00:00:00+00:00",
            "2024-03-12T00:00:00+00:00",
        ),
        # month ends: 31-day month, leap February, year end
        (
            "month",
            "2024-01-31T23:59:59",
            "UTC",
            "2024-01",
            "2024-01-01T00:00:00+00:00",
            "2024-02-01T00:00:00+00:00",
        ),
        (
            "month",
            "2024-02-29T12:00:00",
            "UTC",
            "2024-02",
            "2024-02-01T00:00:00+00:00",
            "2024-03-01T00:00:00+00:00",
        ),
        (
            "month",
            "2023-12-31T23:59:59",
            "UTC",
            "2023-12",
            "2023-12-01T00:00:00+00:00",
            "2024-01-01T00:00:00+00:00",
        ),
        (
            "day",
            "2024-01-31T23:30:00",
            "Europe/Berlin",
            "2024-01-31",
            "2024-01-31T00:00:00+01:00",
            "2024-02-01T00:00:00+01:00",
        ),
        # a month that starts in winter time and ends in summer time
        (
            "month",
            "2024-03-15T00:00:00",
            "Europe/Berlin",
            "2024-03",
            "2024-03-01T00:00:00+01:00",
            "2024-04-01T00:00:00+02:00",
        ),
    ],
)
def test_window_bounds(
    period: str, now: str, zone: str, window_id: str, start: str, end: str
) -> None:
    w = window_at(period, at(now, zone), zone)  # type: ignore[arg-type]
    assert (w.window_id, iso(w.start, zone), iso(w.end, zone)) == (window_id, start, end)
    assert w.contains(at(now, zone)) and not w.contains(w.end)


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/New_York", "2024-03-10T12:00:00", 23),  # spring forward
        ("America/New_York", "2024-11-03T12:00:00", 25),  # fall back
        ("Europe/Berlin", "2024-03-31T12:00:00", 23),
        ("Europe/Berlin", "2024-10-27T12:00:00", 25),
        ("Europe/Berlin", "2024-06-01T12:00:00", 24),
    ],
)
def test_dst_days_last_23_or_25_hours(zone: str, day: str, hours: int) -> None:
    w = window_at("day", at(day, zone), zone)
    assert w.end - w.start == hours * 3600
    assert datetime.fromtimestamp(w.end, ZoneInfo(zone)).strftime("%H:%M") == "00:00"


def test_repeated_fall_back_hour_is_two_windows() -> None:
    first = datetime(2024, 11, 3, 5, 30, tzinfo=UTC).timestamp()  # 01:30 EDT
    second = first + 3600  # 01:30 EST
    a = window_at("hour", first, "America/New_York")
    b = window_at("hour", second, "America/New_York")
    assert (a.window_id, b.window_id) == ("2024-11-03T01-0400", "2024-11-03T01-0500")
    assert b.start == a.end and a.end - a.start == 3600


def test_spring_forward_hour_skips_the_missing_hour() -> None:
    before = window_at("hour", at("2024-03-10T01:30:00", "America/New_York"), "America/New_York")
    after = window_at("hour", before.end, "America/New_York")
    assert after.window_id == "2024-03-10T03-0400"


def test_same_instant_different_zones_different_days() -> None:
    now = datetime(2024, 3, 10, 23, 30, tzinfo=UTC).timestamp()
    assert window_at("day", now, "UTC").window_id == "2024-03-10"
    assert window_at("day", now, "Europe/Berlin").window_id == "2024-03-11"
    assert window_at("day", now, "America/New_York").window_id == "2024-03-10"


def test_window_clock_caches_until_the_window_ends() -> None:
    clock = WindowClock()
    now = at("2024-03-10T23:59:00")
    first = clock.window("day", now, "UTC")
    assert clock.window("day", now + 59, "UTC") is first
    nxt = clock.window("day", now + 60, "UTC")
    assert nxt.window_id == "2024-03-11"
    assert clock.window("day", now, "UTC").window_id == "2024-03-10"  # late callers still right


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3723.25, "1h2m3.25s"),
        (-3, "0s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
