"""Live per-agent view of the audit stream, for `agentctl tail`.

Fed incrementally from the store by record id (a cursor, never a full scan): each
poll reads only rows newer than the last one seen. Rates are over a sliding
60-second window of record timestamps; "today" is the calendar day in UTC, seeded
with one aggregate query at start.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from agentctl.money import usd_str
from agentctl.store.sql import AUDIT, Store

WINDOW_US = 60_000_000


@dataclass
class AgentLive:
    name: str
    owner: str = ""
    purpose: str = ""
    window: deque[tuple[int, int, int]] = field(default_factory=deque)  # (ts, tokens, pico)
    today_pico: int = 0
    today_requests: int = 0
    last_status: int = 0
    last_outcome: str = ""
    last_error: str = ""
    last_ts: int = 0

    def rates(self, now_us: int) -> tuple[int, int, int]:
        while self.window and self.window[0][0] < now_us - WINDOW_US:
            self.window.popleft()
        return (
            len(self.window),
            sum(t for _, t, _ in self.window),
            sum(p for _, _, p in self.window),
        )


def _day_start_us(now: datetime) -> int:
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return int(day.timestamp() * 1_000_000)


class Fleet:
    def __init__(self, store: Store, *, agent: str | None = None, team: str | None = None):
        self.store = store
        self.agent = agent
        self.team = team
        self.agents: dict[str, AgentLive] = {}
        self.cursor = 0
        self.day_start = 0

    def seed(self, now: datetime | None = None) -> None:
        """Start at the end of the log, with today's totals per agent."""
        now = now or datetime.now(UTC)
        self.day_start = _day_start_us(now)
        c = AUDIT.c
        query = (
            sa.select(
                c.agent,
                c.owner,
                c.purpose,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(c.cost_pico), 0),
            )
            .where(c.kind == "request", c.ts_us >= self.day_start)
            .group_by(c.agent, c.owner, c.purpose)
        )
        if self.agent:
            query = query.where(c.agent == self.agent)
        if self.team:
            query = query.where(c.owner == self.team)
        with self.store.engine.connect() as conn:
            for name, owner, purpose, count, pico in conn.execute(query):
                live = self._get(name, owner, purpose)
                live.today_requests += int(count)
                live.today_pico += int(pico)
        self.cursor = self.store.last_id()

    def _get(self, name: str, owner: str, purpose: str) -> AgentLive:
        live = self.agents.get(name)
        if live is None:
            live = self.agents[name] = AgentLive(name, owner, purpose)
        return live

    def poll(self, limit: int = 5000) -> list[dict[str, Any]]:
        """New request rows since the last poll (also folded into the live view)."""
        rows = self.store.records_after(
            self.cursor, limit=limit, kinds=None, agent=self.agent, owner=self.team
        )
        if rows:
            self.cursor = rows[-1]["id"]
        out = []
        for row in rows:
            if row["kind"] != "request":
                continue
            out.append(row)
            if not row["agent"]:
                continue
            live = self._get(row["agent"], row["owner"], row["purpose"])
            pico = row["cost_pico"] or 0
            tokens = row["prompt_tokens"] + row["completion_tokens"]
            live.window.append((row["ts_us"], tokens, pico))
            if row["ts_us"] >= self.day_start:
                live.today_pico += pico
                live.today_requests += 1
            live.last_status = row["status"]
            live.last_outcome = row["outcome"]
            live.last_ts = row["ts_us"]
            if row["outcome"] != "served":
                live.last_error = row["rule_id"] or row["outcome"]
        return out

    def snapshot(self, now_us: int) -> list[dict[str, Any]]:
        view = []
        for live in self.agents.values():
            rpm, tpm, ppm = live.rates(now_us)
            view.append(
                {
                    "agent": live.name,
                    "owner": live.owner,
                    "purpose": live.purpose,
                    "requests_per_min": rpm,
                    "tokens_per_min": tpm,
                    "usd_per_min": usd_str(ppm),
                    "usd_today": usd_str(live.today_pico),
                    "requests_today": live.today_requests,
                    "last_status": live.last_status,
                    "last_error": live.last_error,
                    "_rate": ppm,
                }
            )
        view.sort(key=lambda r: (-r["_rate"], -int(r["requests_per_min"]), r["agent"]))
        return view


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
