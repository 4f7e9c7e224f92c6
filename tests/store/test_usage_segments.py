"""Quota windows rebuilt at start from SQL aggregates (`Store.usage_segments`) must equal
the windows rebuilt record by record, on SQLite and PostgreSQL, in zones with odd
offsets and right after a month boundary."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agentctl.counters.base import Amounts
from agentctl.counters.memory import MemoryCounters
from agentctl.gateway.governance import usage_seeds
from agentctl.policy.governor import Governor
from agentctl.policy.loader import PolicySet, load_text
from agentctl.policy.resolve import policy_zones
from agentctl.policy.windows import window_edges
from agentctl.store.sql import Store
from tests.backends import postgres_database
from tests.policy.policy_support import at

POLICY = """\
apiVersion: agentctl/v1
defaults:
  timezone: Asia/Kolkata
  budgets:
    day: {usd: "100"}
owners:
  team-b:
    timezone: America/New_York
    team_budgets:
      month: {usd: "1000"}
agents:
  a3:
    timezone: Asia/Kathmandu
unverified:
  pool_budgets:
    hour: {requests: 100000}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'u.db'}")
        s.migrate()
        yield s
        s.close()
        return
    gen = postgres_database()
    s = Store(next(gen))
    s.migrate()
    try:
        yield s
    finally:
        s.close()
        next(gen, None)


def records(now: float, count: int, seed: int = 8) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(count):
        offset = rnd.choice([rnd.uniform(0, 40 * 86400), rnd.uniform(0, 7200), -1800.0])
        agent = f"a{rnd.randrange(6)}"
        rows.append(
            {
                "kind": "request",
                "request_id": f"req_{seed}_{i}",
                "ts_us": round((now - offset) * 1e6),
                "agent": agent,
                "owner": "team-b" if agent in ("a1", "a2") else "team-a",
                "purpose": "production",
                "verification": rnd.choice(["token", "token", "unverified", ""]),
                "outcome": rnd.choice(["served", "served", "error", "refused"]),
                "prompt_tokens": rnd.randrange(1000),
                "completion_tokens": rnd.randrange(500),
                "cost_pico": rnd.choice([None, rnd.randrange(10**9)]),
            }
        )
    return rows


def one_by_one(rows: list[dict[str, Any]]) -> list[SimpleNamespace]:
    """The reference: every admitted record as its own seed row."""
    return [
        SimpleNamespace(
            ts=r["ts_us"] / 1e6,
            agent=r["agent"],
            owner=r["owner"],
            purpose=r["purpose"],
            verification=r["verification"] or "unverified",
            requests=1,
            total_tokens=r["prompt_tokens"] + r["completion_tokens"],
            cost_pico=r["cost_pico"] or 0,
        )
        for r in rows
        if r["outcome"] != "refused"
    ]


async def windows(policy: PolicySet, seeds: list[SimpleNamespace], now: float) -> dict[str, Any]:
    counters = MemoryCounters()
    await Governor(policy, counters, clock=lambda: now).seed(seeds, now=now)
    keys = sorted(counters._windows)
    usage = await counters.usage(keys, now=now)
    return {k: (v.used, v.settled) for k, v in usage.items()}


@pytest.mark.parametrize(
    "now",
    [
        at("2026-03-01T00:20", "Asia/Kolkata"),  # 20 minutes into the month there
        at("2026-11-01T01:40", "America/New_York"),  # the repeated hour (DST ends)
        at("2026-07-15T12:05"),
    ],
)
async def test_aggregates_rebuild_the_same_windows_as_every_record(
    store: Store, now: float
) -> None:
    policy = load_text(POLICY)
    rows = records(now, 600)
    store.append_records(rows)
    from_sql = usage_seeds(store, policy, now)
    assert len(from_sql) < len(one_by_one(rows)) / 2  # a few rows per agent and segment
    expected = await windows(policy, one_by_one(rows), now)
    assert expected  # the case is not vacuous
    assert await windows(policy, from_sql, now) == expected


def test_edges_cover_every_zone_the_policy_uses() -> None:
    policy = load_text(POLICY)
    zones = policy_zones(policy)
    assert zones == {"UTC", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu"}
    now = at("2026-03-01T00:20", "Asia/Kolkata")
    edges = window_edges(now, zones)
    assert edges == sorted(set(edges))
    assert at("2026-03-01T00:00", "Asia/Kolkata") in edges  # month start there
    assert at("2026-03-01T00:15", "Asia/Kathmandu") in edges  # +05:45: a quarter-hour edge


async def test_usage_survives_a_restart_across_the_month_boundary(store: Store) -> None:
    policy = load_text("apiVersion: agentctl/v1\ndefaults:\n  timezone: UTC\n")
    now = at("2026-04-01T00:30")
    base = {"kind": "request", "agent": "bot", "owner": "t", "purpose": "production"}
    store.append_records(
        [
            {
                **base,
                "request_id": "r1",
                "ts_us": round(at("2026-03-31T23:50") * 1e6),
                "outcome": "served",
                "prompt_tokens": 7,
                "cost_pico": 70,
            },  # last month
            {
                **base,
                "request_id": "r2",
                "ts_us": round(at("2026-04-01T00:10") * 1e6),
                "outcome": "served",
                "prompt_tokens": 5,
                "cost_pico": 50,
            },
            {
                **base,
                "request_id": "r3",
                "ts_us": round(at("2026-04-01T00:20") * 1e6),
                "outcome": "refused",
                "prompt_tokens": 9,
                "cost_pico": 90,
            },  # never reserved
        ]
    )
    got = await windows(policy, usage_seeds(store, policy, now), now)
    for period, window_id in (
        ("month", "2026-04"),
        ("day", "2026-04-01"),
        ("hour", "2026-04-01T00+0000"),
    ):
        assert got[f"w|agent|bot|{period}|UTC|{window_id}"][0] == Amounts(1, 5, 50)
    assert not any("2026-03" in key for key in got)
