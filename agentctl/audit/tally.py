"""Sums for a report, read from the rollups where whole hours and days allow and from
the records for the rest, folded into buckets (see `agentctl.reports` for the plan).

`Reader.rollup` reads a rollup table over a span of whole UTC hours or days, grouping
by local day in SQL when the zone's offsets are whole hours (`(hour + offset) / 24`
per offset segment: integer arithmetic only), else by hour with labels from Python;
hours that straddle a bucket boundary are collected and read from the records by
quarter hour (`Reader.quarters`), and the partial hours at the period's edges by
`Reader.records`, cut at bucket boundaries to the microsecond.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from agentctl.audit.periods import Buckets, offset_segments
from agentctl.store.rollups import DAILY, HOUR_US, HOURLY, ROLLUP, Grain
from agentctl.store.sql import AUDIT

ERROR_OUTCOMES = ("upstream_error", "timeout", "error")
QUARTER_US = HOUR_US // 4


class Filters(Protocol):
    agent: str | None
    team: str | None
    purpose: str | None
    model: str | None
    outcomes: Sequence[str] | None
    tz: Any


def filters(table: sa.Table, q: Filters) -> list[Any]:
    c = table.c
    conds: list[Any] = []
    for column, value in (
        ("agent", q.agent),
        ("owner", q.team),
        ("purpose", q.purpose),
        ("model", q.model),
    ):
        if value:
            conds.append(c[column] == value)
    if q.outcomes is not None:
        conds.append(c.outcome.in_(list(q.outcomes)))
    return conds


def _rollup_metrics(table: sa.Table) -> list[Any]:
    r = table.c

    def total(col: Any, cond: Any = None) -> Any:
        expr = col if cond is None else sa.case((cond, col), else_=0)
        return sa.func.coalesce(sa.func.sum(expr), 0)

    return [
        total(r.requests),
        total(r.requests, r.outcome == "refused"),
        total(r.requests, r.outcome.in_(ERROR_OUTCOMES)),
        *(
            total(r[m])
            for m in (
                "prompt_tokens",
                "completion_tokens",
                "cached_tokens",
                "reasoning_tokens",
                "estimated",
                "unpriced",
                "cost_pico",
            )
        ),
    ]


def _raw_metrics() -> list[Any]:
    c = AUDIT.c

    def count_if(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    def total(col: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(col), 0)

    return [
        sa.func.count(),
        count_if(c.outcome == "refused"),
        count_if(c.outcome.in_(ERROR_OUTCOMES)),
        total(c.prompt_tokens),
        total(c.completion_tokens),
        total(c.cached_tokens),
        total(c.reasoning_tokens),
        count_if(c.usage_source == "estimated"),
        count_if(c.cost_pico.is_(None)),
        total(c.cost_pico),
    ]


class Tally:
    """Sums per (bucket label, group values), and a sort key per bucket label."""

    def __init__(self) -> None:
        self.sums: dict[tuple[Any, ...], list[int]] = {}
        self.starts: dict[str, int] = {}

    def add(self, label: str, start: int, keys: Iterable[Any], values: Iterable[Any]) -> None:
        key = (label, *keys)
        acc = self.sums.get(key)
        nums = [int(v) for v in values]
        if acc is None:
            self.sums[key] = nums
        else:
            for i, v in enumerate(nums):
                acc[i] += v
        if label not in self.starts or start < self.starts[label]:
            self.starts[label] = start


@dataclass
class Spans:
    """Where each part of [since, until) is read from: whole UTC days, whole hours, records."""

    days: tuple[int | None, int | None] | None
    hours: list[tuple[int | None, int | None]]
    raw: list[tuple[int, int]]


def spans(since: int | None, until: int | None, *, use_days: bool) -> Spans:
    h_lo = None if since is None else -(-since // HOUR_US)
    h_hi = None if until is None else until // HOUR_US
    if since is not None and until is not None and -(-since // HOUR_US) >= until // HOUR_US:
        return Spans(None, [], [(since, until)])  # inside one hour
    raw = []
    if since is not None and h_lo is not None:
        raw.append((since, h_lo * HOUR_US))
    if until is not None and h_hi is not None:
        raw.append((h_hi * HOUR_US, until))
    d_lo = None if h_lo is None else -(-h_lo // 24)
    d_hi = None if h_hi is None else h_hi // 24
    if not use_days or (d_lo is not None and d_hi is not None and d_lo >= d_hi):
        return Spans(None, [(h_lo, h_hi)], raw)
    hours: list[tuple[int | None, int | None]] = []
    if h_lo is not None and d_lo is not None and h_lo < d_lo * 24:
        hours.append((h_lo, d_lo * 24))
    if h_hi is not None and d_hi is not None and d_hi * 24 < h_hi:
        hours.append((d_hi * 24, h_hi))
    return Spans((d_lo, d_hi), hours, raw)


def _day_label(index: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=index)).isoformat()


class Reader:
    """Runs the rollup and record queries for one report and folds them into totals."""

    def __init__(self, conn: Any, q: Filters, columns: list[str], buckets: Buckets):
        self.conn, self.q, self.columns, self.buckets = conn, q, columns, buckets
        self.totals = Tally()
        self.straddling: set[int] = set()

    def rollup(
        self, grain: Grain, span: tuple[int | None, int | None], offsets: list[Any] | None
    ) -> None:
        table = grain.table
        unit, keys = table.c[grain.unit], [table.c[col] for col in self.columns]
        bucket: list[Any] = []
        if self.buckets.unit == "day" and offsets is not None and grain is HOURLY:
            # Local day index = (UTC hour + offset) // 24, offset constant per segment.
            cases = [(unit < end, (unit + off) // 24) for end, off in offsets[:-1]]
            last = (unit + offsets[-1][1]) // 24
            bucket = [sa.case(*cases, else_=last) if cases else last]
        elif self.buckets.unit:
            bucket = [unit]
        query = sa.select(*bucket, *keys, *_rollup_metrics(table)).where(*filters(table, self.q))
        if span[0] is not None:
            query = query.where(unit >= span[0])
        if span[1] is not None:
            query = query.where(unit < span[1])
        width = len(bucket)
        for row in self.conn.execute(query.group_by(*bucket, *keys)):
            values, sums = row[width : width + len(keys)], row[width + len(keys) :]
            if not width:
                self.totals.add("", 0, values, sums)
            elif self.buckets.unit == "day" and (offsets is not None or grain is DAILY):
                index = int(row[0])
                self.totals.add(_day_label(index), index, values, sums)
            else:
                hour = int(row[0])
                label = self.buckets.hour_label(hour)
                if label is None:
                    self.straddling.add(hour)  # read from the records, cut at the boundary
                else:
                    self.totals.add(label, hour * HOUR_US, values, sums)

    def records(self, intervals: list[tuple[int, int]]) -> None:
        c = AUDIT.c
        keys = [sa.func.coalesce(c[col], "") for col in self.columns]
        base = sa.select(*keys, *_raw_metrics()).where(c.kind == "request", *filters(AUDIT, self.q))
        for start, stop in intervals:
            for lo, hi, label in self.buckets.split(start, stop):
                query = base.where(c.ts_us >= lo, c.ts_us < hi).group_by(*keys)
                for row in self.conn.execute(query):
                    self.totals.add(label, lo, row[: len(keys)], row[len(keys) :])

    def quarters(self, hours: list[int]) -> None:
        """Records of hours that straddle a bucket boundary, by quarter hour (every zone
        offset in use is a multiple of 15 minutes; a quarter that is not is cut exactly)."""
        c = AUDIT.c
        quarter = c.ts_us // QUARTER_US
        keys = [sa.func.coalesce(c[col], "") for col in self.columns]
        base = sa.select(quarter, *keys, *_raw_metrics()).where(
            c.kind == "request", *filters(AUDIT, self.q)
        )
        ranges: list[list[int]] = []
        for hour in hours:  # consecutive hours become one range (one indexed scan)
            if ranges and ranges[-1][1] == hour:
                ranges[-1][1] = hour + 1
            else:
                ranges.append([hour, hour + 1])
        cut: list[tuple[int, int]] = []
        for first, end in ranges:
            query = base.where(c.ts_us >= first * HOUR_US, c.ts_us < end * HOUR_US)
            for row in self.conn.execute(query.group_by(quarter, *keys)):
                lo = int(row[0]) * QUARTER_US
                label = self.buckets.label(lo)
                if label != self.buckets.label(lo + QUARTER_US - 1):
                    cut.append((lo, lo + QUARTER_US))
                    continue
                self.totals.add(label, lo, row[1 : 1 + len(keys)], row[1 + len(keys) :])
        self.records(sorted(set(cut)))


def offsets(conn: Any, q: Filters, spans: Spans) -> list[Any] | None:
    """Offset segments of the zone over the hours the report reads (None: not whole hours)."""
    bounds = [h for span in spans.hours for h in span if h is not None]
    if len(bounds) < 2 * len(spans.hours) or not bounds:
        r = ROLLUP.c
        low, high = conn.execute(sa.select(sa.func.min(r.hour), sa.func.max(r.hour))).one()
        if low is None:
            return None
        bounds += [int(low), int(high) + 1]
    return offset_segments(q.tz, min(bounds), max(bounds))
