"""Compliance reports: usage, cost and refusals per agent, team, purpose, model, day, hour.

Sources: whole UTC days and hours come from the exact rollups (`store/rollups.py`), the
partial hours at the edges (a `--since` not on the hour, a zone whose offset is not a
whole number of hours) from the records themselves, each piece in exactly one bucket
(`audit/tally.py` reads them). So a report costs the same over a million records as
over a thousand, and its totals equal a plain SUM over the records with the same
filter. Integer sums (tokens, pico-dollars) stay exact; costs leave this module as
decimal strings.

Day and hour buckets are local to `--tz` and computed in Python (`audit/periods.py`),
so month ends and DST changes are the zone's own and SQLite and PostgreSQL agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agentctl.audit import tally
from agentctl.audit.periods import Buckets
from agentctl.audit.tally import Tally
from agentctl.errors import CliError
from agentctl.money import usd_str
from agentctl.store.rollups import DAILY, HOURLY
from agentctl.store.sql import Store

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
GROUPS = ("agent", "team", "purpose", "model", "day", "hour", "outcome", "rule")
_GROUP_COLUMNS = {
    "agent": ("agent", "owner", "purpose"),
    "team": ("owner",),
    "purpose": ("purpose",),
    "model": ("model",),
    "outcome": ("outcome",),
    "rule": ("rule_id",),
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
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu",
                        "Etc/Zulu", "Etc/GMT", "GMT", "Etc/Greenwich", "Greenwich"})  # fmt: skip


def parse_time(value: str | None, tz: ZoneInfo, *, now: datetime | None = None) -> int | None:
    """ISO date/datetime (in `tz` when naive) or a relative age like 24h, 7d -> epoch us."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    text = value.strip().lower()
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return _us(now - delta)
    if text == "today":
        local = now.astimezone(tz)
        return _us(datetime(local.year, local.month, local.day, tzinfo=tz))
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            parsed = datetime(d.year, d.month, d.day, tzinfo=tz)
        else:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=tz)
    except ValueError:
        raise CliError(
            f"cannot read time {value!r}: use a date (2026-12-01), a datetime "
            "(2026-12-01T13:00), 'today', or an age like 30m, 24h, 7d",
            exit_code=2,
        ) from None
    return _us(parsed)


def _us(moment: datetime) -> int:
    return (moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@dataclass
class ReportQuery:
    agent: str | None = None
    team: str | None = None
    purpose: str | None = None
    model: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    group_by: list[str] = field(default_factory=lambda: ["agent"])
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    outcomes: Sequence[str] | None = None


def _plan(group_by: Sequence[str]) -> tuple[list[str], str | None]:
    columns: list[str] = []
    unit = None
    for g in group_by:
        if g not in GROUPS:
            raise CliError(f"cannot group by {g!r}; choose from {', '.join(GROUPS)}", exit_code=2)
        if g in ("day", "hour"):
            if unit not in (None, g):
                raise CliError("group by day or by hour, not both", exit_code=2)
            unit = g
            continue
        columns += [c for c in _GROUP_COLUMNS[g] if c not in columns]
    return columns, unit


def _collect(store: Store, q: ReportQuery, columns: list[str], buckets: Buckets) -> Tally:
    fixed = q.tz.utcoffset(datetime(2000, 1, 1)) == timedelta(0) and q.tz.key in _UTC_NAMES
    use_days = buckets.unit is None or (buckets.unit == "day" and fixed)
    spans = tally.spans(q.since_us, q.until_us, use_days=use_days)
    with store.engine.connect() as conn:
        reader = tally.Reader(conn, q, columns, buckets)
        offsets = tally.offsets(conn, q, spans) if buckets.unit == "day" and not fixed else None
        if spans.days is not None:
            reader.rollup(DAILY, spans.days, None)
        for span in spans.hours:
            reader.rollup(HOURLY, span, offsets)
        reader.records(spans.raw)
        reader.quarters(sorted(reader.straddling))
    return reader.totals


def build_report(store: Store, q: ReportQuery) -> dict[str, Any]:
    """`{"rows": [...], "totals": {...}}`; rows sorted by time bucket, then cost."""
    columns, unit = _plan(q.group_by)
    totals = _collect(store, q, columns, Buckets(unit, q.tz))
    grand = [0] * (len(METRICS) + 1)
    rows = []
    for key, sums in totals.sums.items():
        label, values = key[0], key[1:]
        if not sums[0]:
            continue  # a group whose records were all pruned
        row: dict[str, Any] = {}
        if unit:
            row[unit] = label
        for col, value in zip(columns, values, strict=True):
            row["rule" if col == "rule_id" else col] = value
        if "owner" in row:
            row["team"] = row["owner"]
        for i, m in enumerate(METRICS):
            row[m] = sums[i]
        row["cost_usd"] = usd_str(sums[-1])
        row["_pico"] = sums[-1]
        row["_start"] = label if unit == "day" else totals.starts.get(label, 0)
        for i, v in enumerate(sums):
            grand[i] += v
        rows.append(row)
    rows.sort(key=lambda r: (r["_start"], -r["_pico"], [str(r.get(c, "")) for c in columns]))
    for row in rows:
        del row["_pico"], row["_start"]
    out_totals: dict[str, Any] = {m: grand[i] for i, m in enumerate(METRICS)}
    out_totals["cost_usd"] = usd_str(grand[-1])
    return {"rows": rows, "totals": out_totals}
