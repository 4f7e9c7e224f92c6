"""The report engine (rollups + record edges) against a brute-force sum over the records.

Random records around DST changes and month ends, random periods (on and off the
hour), every grouping and several zones, including ones whose offset is not a whole
number of hours (Asia/Kolkata, Asia/Kathmandu), where hours straddle day boundaries.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agentctl.money import usd_str
from agentctl.reports import ReportQuery, build_report
from agentctl.store import rollups
from agentctl.store.sql import AUDIT, Store
from tests.backends import postgres_database

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu")
START = datetime(2026, 10, 23, tzinfo=UTC)  # spans Berlin's DST end and October's end


def us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    else:
        gen = postgres_database()
        s = Store(next(gen))
        request.addfinalizer(lambda: next(gen, None))
    s.migrate()
    yield s
    s.close()


def synthetic(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    span = int(timedelta(days=12).total_seconds() * 1e6)
    rows = []
    for i in range(n):
        agent = rng.choice(("a1", "a2", "b1"))
        outcome = rng.choice(("served", "served", "served", "refused", "upstream_error"))
        rows.append(
            {
                "request_id": f"r{seed}-{i}",
                "ts_us": us(START) + rng.randrange(span),
                "agent": agent,
                "owner": "team-a" if agent.startswith("a") else "team-b",
                "purpose": "batch" if agent == "a2" else "production",
                "model": rng.choice(("m1", "m2")),
                "outcome": outcome,
                "rule_id": "rule-x" if outcome == "refused" else None,
                "prompt_tokens": rng.randrange(100),
                "completion_tokens": rng.randrange(100),
                "cost_pico": None if rng.random() < 0.05 else rng.randrange(10**9),
                "usage_source": rng.choice(("reported", "estimated")),
            }
        )
    return sorted(rows, key=lambda r: r["ts_us"])


def label(ts: int, unit: str | None, tz: ZoneInfo) -> str:
    local = (EPOCH + timedelta(microseconds=ts)).astimezone(tz)
    if unit == "day":
        return local.date().isoformat()
    if unit == "hour":
        return local.replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")
    return ""


def brute(rows: list[dict[str, Any]], q: ReportQuery) -> dict[tuple[str, ...], tuple[int, ...]]:
    unit = next((g for g in q.group_by if g in ("day", "hour")), None)
    cols = [g for g in q.group_by if g not in ("day", "hour")]
    out: dict[tuple[str, ...], list[int]] = {}
    for r in rows:
        if (q.since_us is not None and r["ts_us"] < q.since_us) or (
            q.until_us is not None and r["ts_us"] >= q.until_us
        ):
            continue
        if q.team and r["owner"] != q.team:
            continue
        key = (label(r["ts_us"], unit, q.tz), *(r["owner" if c == "team" else c] for c in cols))
        acc = out.setdefault(key, [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += r["outcome"] == "refused"
        acc[2] += r["completion_tokens"]
        acc[3] += r["cost_pico"] or 0
    return {k: tuple(v) for k, v in out.items()}


def engine(store: Store, q: ReportQuery) -> dict[tuple[str, ...], tuple[int, ...]]:
    unit = next((g for g in q.group_by if g in ("day", "hour")), None)
    cols = [g for g in q.group_by if g not in ("day", "hour")]
    data = build_report(store, q)
    out = {}
    for row in data["rows"]:
        key = (row[unit] if unit else "", *(row[c] for c in cols))
        pico = round(float(row["cost_usd"]) * 10**12)  # exactness checked below
        out[key] = (row["requests"], row["denied"], row["completion_tokens"], pico)
        assert usd_str(pico) == row["cost_usd"]
    return out


def test_engine_matches_brute_force(store: Store) -> None:
    rows = synthetic(400, seed=3)
    store.append_records(rows[:250])
    store.append_records(rows[250:])
    rng = random.Random(5)
    cases = 0
    for zone in ZONES:
        tz = ZoneInfo(zone)
        for group in (["agent"], ["day"], ["hour"], ["team", "day"], ["model", "hour"]):
            for _ in range(3):
                bounds = sorted(us(START) + rng.randrange(12 * 86_400_000_000) for _ in range(2))
                since, until = rng.choice(
                    [(None, None), (bounds[0], None), (None, bounds[1]), tuple(bounds)]
                )
                if rng.random() < 0.3 and since is not None:
                    since -= since % 3_600_000_000  # on the hour
                q = ReportQuery(group_by=group, tz=tz, since_us=since, until_us=until)
                q.team = rng.choice((None, "team-a"))
                assert engine(store, q) == brute(rows, q), (zone, group, since, until)
                cases += 1
    assert cases == len(ZONES) * 15


def test_rollups_maintained_by_the_writer_equal_a_rebuild(store: Store) -> None:
    rows = synthetic(300, seed=9)
    for start in range(0, 300, 37):
        store.append_records(rows[start : start + 37])
    with store.engine.begin() as conn:
        before = {
            g.unit: sorted(tuple(r) for r in conn.execute(g.table.select())) for g in rollups.GRAINS
        }
        rollups.rebuild(conn, AUDIT)
        after = {
            g.unit: sorted(tuple(r) for r in conn.execute(g.table.select())) for g in rollups.GRAINS
        }
    assert before == after and len(before["hour"]) > len(before["day"]) > 0


def test_a_switch_of_an_agent_known_only_from_requests_says_it_was_active() -> None:
    # Regression (operator trial): the HTML controls table said "status unknown ->
    # disabled" for an agent that had been serving.
    from agentctl.audit.controls import summary

    event = {"kind": "disable", "detail": {"before": None, "after": {"status": "disabled"}}}
    assert summary(event) == "status active (declared) -> disabled"
