"""Live per-agent view of the audit stream, for `agentctl tail`.

Cheap at any table size:
- the cursor is the record id: each poll reads only rows newer than the last one
  seen, through the primary key, a few narrow columns at a time;
- at start, today's totals come from the hourly rollup for the whole hours since
  local midnight and from the records of the current hour (ts index), and the rate
  window from the records of the last minute (ts index), all bounded by the cursor
  read first, so nothing is counted twice;
- rates are running sums over a sliding window (60 s of record timestamps).

Status comes from the agents table (refreshed every few seconds and whenever a
switch event passes by); `throttled` means a 429 in the window. Trust tier and
budget come from an `AgentInfo` provider the gateway wires in; without one they
show as unknown.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from agentctl.money import to_pico, usd_str
from agentctl.reports import ReportQuery, build_report, parse_time
from agentctl.store.rollups import HOUR_US
from agentctl.store.sql import AUDIT, Store, now_us

WINDOW_US = 60_000_000
STATUS_EVERY_US = 5_000_000
SWITCHES = frozenset({"disable", "enable", "breaker", "register"})
_COLS = (
    "id",
    "kind",
    "request_id",
    "ts_us",
    "agent",
    "owner",
    "purpose",
    "model",
    "status",
    "outcome",
    "rule_id",
    "prompt_tokens",
    "completion_tokens",
    "cost_pico",
    "usage_source",
)


@dataclass(frozen=True)
class Extras:
    tier: str | None = None
    budget_today_usd: str | None = None  # decimal string


class AgentInfo(Protocol):
    """Trust tier and today's budget per agent; unknown agents are simply absent."""

    def describe(self, agents: Sequence[str]) -> Mapping[str, Extras]: ...


class NoInfo:
    def describe(self, agents: Sequence[str]) -> Mapping[str, Extras]:
        return {}


@dataclass
class AgentLive:
    name: str
    owner: str = ""
    purpose: str = ""
    window: deque[tuple[int, int, int, bool, bool]] = field(default_factory=deque)
    w_tokens: int = 0
    w_pico: int = 0
    w_errors: int = 0
    w_throttled: int = 0
    today_pico: int = 0
    today_requests: int = 0
    last_status: int = 0
    last_error: str = ""
    last_ts: int = 0

    def add(self, ts: int, tokens: int, pico: int, status: int, error: bool) -> None:
        self.window.append((ts, tokens, pico, status == 429, error))
        self.w_tokens += tokens
        self.w_pico += pico
        self.w_errors += error
        self.w_throttled += status == 429

    def expire(self, now: int) -> None:
        while self.window and self.window[0][0] < now - WINDOW_US:
            _, tokens, pico, throttled, error = self.window.popleft()
            self.w_tokens -= tokens
            self.w_pico -= pico
            self.w_throttled -= throttled
            self.w_errors -= error


class Fleet:
    def __init__(
        self,
        store: Store,
        *,
        agent: str | None = None,
        team: str | None = None,
        tz: ZoneInfo | None = None,
        info: AgentInfo | None = None,
    ) -> None:
        self.store = store
        self.agent = agent
        self.team = team
        self.tz = tz or ZoneInfo("UTC")
        self.info = info or NoInfo()
        self.agents: dict[str, AgentLive] = {}
        self.status: dict[str, str] = {}
        self.cursor = 0
        self.day_start = 0
        self._status_at = 0

    def _filters(self) -> list[Any]:
        c = AUDIT.c
        conds = []
        if self.agent:
            conds.append(c.agent == self.agent)
        if self.team:
            conds.append(c.owner == self.team)
        return conds

    def seed(self, now: datetime | None = None) -> None:
        """Start at the end of the log, with today's totals and the last minute's rates."""
        now = now or datetime.now(UTC)
        now_at = int(now.timestamp() * 1_000_000)
        self.cursor = self.store.last_id()
        self.day_start = parse_time("today", self.tz, now=now) or 0
        hour = max(now_at // HOUR_US * HOUR_US, self.day_start)
        query = ReportQuery(
            agent=self.agent, team=self.team, since_us=self.day_start, until_us=hour, tz=self.tz
        )
        for row in build_report(self.store, query)["rows"]:
            live = self._get(row["agent"], row["owner"], row["purpose"])
            live.today_requests += row["requests"]
            live.today_pico += to_pico(row["cost_usd"])
        c = AUDIT.c
        base = [c.kind == "request", c.id <= self.cursor, *self._filters()]
        with self.store.engine.connect() as conn:
            today = sa.select(
                c.agent, c.owner, c.purpose, sa.func.count(), sa.func.sum(c.cost_pico)
            ).where(*base, c.ts_us >= hour)
            for name, owner, purpose, count, pico in conn.execute(
                today.group_by(c.agent, c.owner, c.purpose)
            ):
                live = self._get(name, owner, purpose)
                live.today_requests += int(count)
                live.today_pico += int(pico or 0)
            recent = sa.select(*(c[k] for k in _COLS)).where(*base, c.ts_us >= now_at - WINDOW_US)
            rows = [dict(r._mapping) for r in conn.execute(recent.order_by(c.ts_us))]
        for row in rows:
            self._fold(row, today=False)
        self.refresh_status(now_at)

    def refresh_status(self, now: int) -> None:
        self.status = {a.name: a.status for a in self.store.list_agents(owner=self.team)}
        self._status_at = now

    def _get(self, name: str, owner: str, purpose: str) -> AgentLive:
        live = self.agents.get(name)
        if live is None:
            live = self.agents[name] = AgentLive(name, owner, purpose)
        return live

    def _fold(self, row: dict[str, Any], *, today: bool = True) -> None:
        if not row["agent"]:
            return
        live = self._get(row["agent"], row["owner"], row["purpose"])
        pico = row["cost_pico"] or 0
        error = row["outcome"] != "served"
        tokens = row["prompt_tokens"] + row["completion_tokens"]
        live.add(row["ts_us"], tokens, pico, row["status"], error)
        if today and row["ts_us"] >= self.day_start:
            live.today_pico += pico
            live.today_requests += 1
        if row["ts_us"] >= live.last_ts:
            live.last_ts, live.last_status = row["ts_us"], row["status"]
        if error:
            live.last_error = row["rule_id"] or row["outcome"]

    def poll(self, limit: int = 5000) -> list[dict[str, Any]]:
        """New request rows since the last poll (also folded into the live view)."""
        c = AUDIT.c
        query = (
            sa.select(*(c[k] for k in _COLS))
            .where(c.id > self.cursor, *self._filters())
            .order_by(c.id)
            .limit(limit)
        )
        with self.store.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if rows:
            self.cursor = rows[-1]["id"]
        out, switched = [], False
        for row in rows:
            if row["kind"] != "request":
                switched = switched or row["kind"] in SWITCHES
                continue
            out.append(row)
            self._fold(row)
        if switched:
            self.refresh_status(now_us())
        return out

    def roll_day(self, now: datetime) -> None:
        start = parse_time("today", self.tz, now=now) or 0
        if start > self.day_start:
            self.day_start = start
            for live in self.agents.values():
                live.today_pico = live.today_requests = 0

    def snapshot(self, now: int) -> list[dict[str, Any]]:
        if now - self._status_at > STATUS_EVERY_US:
            self.refresh_status(now)
        extras = self.info.describe(sorted(self.agents))
        view: list[dict[str, Any]] = []
        for live in self.agents.values():
            live.expire(now)
            extra = extras.get(live.name, Extras())
            status = self.status.get(live.name, "active")
            if status == "active" and live.w_throttled:
                status = "throttled"
            view.append(
                {
                    "agent": live.name,
                    "owner": live.owner,
                    "purpose": live.purpose,
                    "status": status,
                    "tier": extra.tier,
                    "requests_per_min": len(live.window),
                    "tokens_per_min": live.w_tokens,
                    "usd_per_min": usd_str(live.w_pico),
                    "errors_per_min": live.w_errors,
                    "usd_today": usd_str(live.today_pico),
                    "budget_today_usd": extra.budget_today_usd,
                    "requests_today": live.today_requests,
                    "last_status": live.last_status,
                    "last_error": live.last_error,
                    "_rate": live.w_pico,
                }
            )
        view.sort(key=lambda r: (-r["_rate"], -r["requests_per_min"], r["agent"]))
        for row in view:
            del row["_rate"]
        return view


def fleet_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The header line: the whole (filtered) fleet."""
    return {
        "agents": len(rows),
        "active": sum(1 for r in rows if r["requests_per_min"]),
        "disabled": sum(1 for r in rows if r["status"] == "disabled"),
        "requests_per_min": sum(r["requests_per_min"] for r in rows),
        "tokens_per_min": sum(r["tokens_per_min"] for r in rows),
        "usd_per_min": usd_str(sum(to_pico(r["usd_per_min"]) for r in rows)),
        "usd_today": usd_str(sum(to_pico(r["usd_today"]) for r in rows)),
        "errors_per_min": sum(r["errors_per_min"] for r in rows),
    }


def call_line(row: dict[str, Any]) -> dict[str, Any]:
    """The `tail --json` shape of one audited call."""
    pico = row.get("cost_pico")
    return {
        "ts": datetime.fromtimestamp(row["ts_us"] / 1e6, UTC).isoformat(),
        "request_id": row["request_id"],
        "agent": row["agent"],
        "owner": row["owner"],
        "purpose": row["purpose"],
        "model": row["model"],
        "status": row["status"],
        "outcome": row["outcome"],
        "rule_id": row["rule_id"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cost_usd": usd_str(pico) if pico is not None else None,
        "usage_source": row["usage_source"],
    }
