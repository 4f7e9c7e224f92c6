"""Everything the HTML compliance report shows, gathered from the store.

Each figure comes from `build_report` with the same filters as the page's totals, so
the per-day chart, the top agents and the refusals all add up to the totals, which
equal `agentctl report --format json` with the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from agentctl.audit import controls
from agentctl.audit.periods import to_datetime
from agentctl.audit.verify import HEADS
from agentctl.reports import ReportQuery, build_report
from agentctl.store.sql import Store

MAX_DAYS = 400


@dataclass
class Compliance:
    query: ReportQuery
    generated_us: int
    totals: dict[str, Any]
    agents: list[dict[str, Any]]
    teams: list[dict[str, Any]]
    purposes: list[dict[str, Any]]
    days: list[str]
    daily: dict[str, dict[str, Decimal]]  # agent -> day -> cost
    refusals: list[dict[str, Any]]  # rule, refusals, agents
    switches: list[dict[str, Any]]
    other_events: list[dict[str, Any]]
    head: tuple[int, str] = (0, "")
    filters: dict[str, str] = field(default_factory=dict)


def gather(store: Store, q: ReportQuery, now_us: int) -> Compliance:
    def report(*group_by: str, **changes: Any) -> dict[str, Any]:
        return build_report(store, replace(q, group_by=list(group_by), **changes))

    by_agent = report("agent")
    daily_rows = report("agent", "day")["rows"]
    daily: dict[str, dict[str, Decimal]] = {}
    for row in daily_rows:
        daily.setdefault(row["agent"], {})[row["day"]] = Decimal(row["cost_usd"])
    refusals: dict[str, dict[str, Any]] = {}
    for row in report("rule", "agent", outcomes=("refused",))["rows"]:
        entry = refusals.setdefault(row["rule"], {"rule": row["rule"], "refusals": 0, "agents": {}})
        entry["refusals"] += row["requests"]
        entry["agents"][row["agent"] or "(no identity)"] = row["requests"]
    events = controls.events(store, q.since_us, q.until_us, agent=q.agent, team=q.team)
    for event in events:
        event["summary"] = controls.summary(event)
    return Compliance(
        query=q,
        generated_us=now_us,
        totals=by_agent["totals"],
        agents=by_agent["rows"],
        teams=report("team")["rows"],
        purposes=report("purpose")["rows"],
        days=_days(q, [r["day"] for r in daily_rows], now_us),
        daily=daily,
        refusals=sorted(refusals.values(), key=lambda e: (-e["refusals"], e["rule"])),
        switches=[e for e in events if e["kind"] in controls.SWITCHES],
        other_events=[e for e in events if e["kind"] not in controls.SWITCHES],
        head=_head(store),
        filters={
            k: v
            for k, v in (
                ("agent", q.agent),
                ("team", q.team),
                ("purpose", q.purpose),
                ("model", q.model),
            )
            if v
        },
    )


def _days(q: ReportQuery, seen: list[str], now_us: int) -> list[str]:
    """Every local day of the period (or of the data), gaps included."""
    first = to_datetime(q.since_us, q.tz).date() if q.since_us is not None else None
    last = to_datetime(q.until_us - 1, q.tz).date() if q.until_us is not None else None
    if seen:
        first = first or date.fromisoformat(min(seen))
        last = last or date.fromisoformat(max(seen))
    if first is None:
        return []
    last = last or to_datetime(now_us, q.tz).date()
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _head(store: Store) -> tuple[int, str]:
    with store.engine.connect() as conn:
        row = conn.execute(HEADS.select().where(HEADS.c.chain == "main")).first()
    return (int(row.last_id), str(row.last_hash)) if row is not None else (0, "")


def cost(row: dict[str, Any]) -> Decimal:
    return Decimal(row["cost_usd"])


def share(part: Decimal, whole: Decimal) -> str:
    return f"{part / whole * 100:.1f}%" if whole else "-"
