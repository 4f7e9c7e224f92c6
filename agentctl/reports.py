"""Compliance reports: usage and refusals per agent, team (owner) or purpose.

Aggregation happens in SQL over integer columns (tokens, pico-dollars), so totals
are exact and reconcile with the audit records: the totals row is the sum of the
rows, and both equal a plain SUM over the same filter. Costs leave this module as
decimal strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from agentctl.errors import CliError
from agentctl.money import usd_str
from agentctl.store.sql import AUDIT, Store

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
GROUPS = ("agent", "team", "purpose", "model")
_GROUP_COLUMNS = {
    "agent": ("agent", "owner", "purpose"),
    "team": ("owner",),
    "purpose": ("purpose",),
    "model": ("model",),
}
METRICS = (
    "requests",
    "denied",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "estimated",
    "unpriced",
)


def parse_time(value: str | None, tz: ZoneInfo, *, now: datetime | None = None) -> int | None:
    """ISO date/datetime (in `tz` when naive) or a relative age like 24h, 7d -> epoch us."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    text = value.strip().lower()
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return int((now - delta).timestamp() * 1_000_000)
    if text == "today":
        local = now.astimezone(tz)
        start = datetime(local.year, local.month, local.day, tzinfo=tz)
        return int(start.timestamp() * 1_000_000)
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            parsed = datetime(d.year, d.month, d.day, tzinfo=tz)
        else:
            parsed = datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=tz)
    except ValueError:
        raise CliError(
            f"cannot read time {value!r}: use a date (2026-12-01), a datetime "
            "(2026-12-01T13:00), 'today', or an age like 30m, 24h, 7d",
            exit_code=2,
        ) from None
    return int(parsed.timestamp() * 1_000_000)


@dataclass
class ReportQuery:
    agent: str | None = None
    team: str | None = None
    purpose: str | None = None
    model: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    group_by: list[str] = field(default_factory=lambda: ["agent"])


def _filters(q: ReportQuery) -> list[Any]:
    c = AUDIT.c
    conds: list[Any] = [c.kind == "request"]
    if q.agent:
        conds.append(c.agent == q.agent)
    if q.team:
        conds.append(c.owner == q.team)
    if q.purpose:
        conds.append(c.purpose == q.purpose)
    if q.model:
        conds.append(c.model == q.model)
    if q.since_us is not None:
        conds.append(c.ts_us >= q.since_us)
    if q.until_us is not None:
        conds.append(c.ts_us < q.until_us)
    return conds


def _metric_columns() -> list[Any]:
    c = AUDIT.c

    def count_if(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    return [
        sa.func.count().label("requests"),
        count_if(c.outcome == "refused").label("denied"),
        count_if(c.outcome.in_(("upstream_error", "timeout", "error"))).label("errors"),
        sa.func.coalesce(sa.func.sum(c.prompt_tokens), 0).label("prompt_tokens"),
        sa.func.coalesce(sa.func.sum(c.completion_tokens), 0).label("completion_tokens"),
        sa.func.coalesce(sa.func.sum(c.cached_tokens), 0).label("cached_tokens"),
        sa.func.coalesce(sa.func.sum(c.reasoning_tokens), 0).label("reasoning_tokens"),
        count_if(c.usage_source == "estimated").label("estimated"),
        count_if(c.cost_pico.is_(None)).label("unpriced"),
        sa.func.coalesce(sa.func.sum(c.cost_pico), 0).label("cost_pico"),
    ]


def build_report(store: Store, q: ReportQuery) -> dict[str, Any]:
    for g in q.group_by:
        if g not in GROUPS:
            raise CliError(f"cannot group by {g!r}; choose from {', '.join(GROUPS)}", exit_code=2)
    columns: list[str] = []
    for g in q.group_by:
        for col in _GROUP_COLUMNS[g]:
            if col not in columns:
                columns.append(col)
    keys = [AUDIT.c[col] for col in columns]
    query = (
        sa.select(*keys, *_metric_columns())
        .where(*_filters(q))
        .group_by(*keys)
        .order_by(sa.desc("cost_pico"), *keys)
    )
    with store.engine.connect() as conn:
        result = [dict(r._mapping) for r in conn.execute(query)]
    totals: dict[str, Any] = {m: 0 for m in METRICS}
    total_pico = 0
    rows = []
    for raw in result:
        row: dict[str, Any] = {col: raw[col] for col in columns}
        if "owner" in row:
            row["team"] = row["owner"]
        for m in METRICS:
            row[m] = int(raw[m])
            totals[m] += row[m]
        pico = int(raw["cost_pico"])
        total_pico += pico
        row["cost_usd"] = usd_str(pico)
        rows.append(row)
    totals["cost_usd"] = usd_str(total_pico)
    return {"rows": rows, "totals": totals}
