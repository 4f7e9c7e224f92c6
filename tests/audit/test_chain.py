"""Tamper evidence: the chain, its daily anchors, verify, prune; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentctl.audit.prune import prune
from agentctl.audit.verify import verify
from agentctl.errors import CliError
from agentctl.reports import ReportQuery, build_report
from agentctl.store.chain import ANCHORS, day_start_us, record_hash
from agentctl.store.sql import AUDIT, Store
from tests.backends import postgres_database

DAYS = ("2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05")
PER_DAY = 6


BOTH = pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """SQLite; the tests marked BOTH also run on PostgreSQL (the same SQL must hold)."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'chain.db'}")
    else:
        gen = postgres_database()
        s = Store(next(gen))
        request.addfinalizer(lambda: next(gen, None))
    s.migrate()
    yield s
    s.close()


def fill(store: Store) -> None:
    """PER_DAY request records on each of DAYS, one batch per day."""
    for d, day in enumerate(DAYS):
        start = day_start_us(day)
        store.append_records(
            [
                {
                    "request_id": f"req-{d}-{i}",
                    "ts_us": start + i * 3_600_000_000,
                    "agent": f"bot-{i % 2}",
                    "owner": "team-ml",
                    "outcome": "served",
                    "prompt_tokens": 10 + i,
                    "cost_pico": 1000 * (d + 1) + i,
                }
                for i in range(PER_DAY)
            ]
        )


def rows(store: Store) -> list[dict[str, Any]]:
    return store.records_after(0, limit=10_000, kinds=None)


def execute(store: Store, stmt: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(stmt)


def test_chain_verifies_with_one_anchor_per_day(store: Store) -> None:
    fill(store)
    verdict = verify(store)
    assert verdict.ok and verdict.records == len(DAYS) * PER_DAY
    assert verdict.days == list(DAYS) and verdict.head_id == len(DAYS) * PER_DAY


@BOTH
def test_edited_record_is_named(store: Store) -> None:
    fill(store)
    execute(store, AUDIT.update().where(AUDIT.c.id == 9).values(cost_pico=0))
    problem = verify(store).problem
    assert problem is not None and (problem.kind, problem.id) == ("modified", 9)
    assert problem.request_id == "req-1-2"


def test_edited_and_rehashed_record_is_named(store: Store) -> None:
    fill(store)
    row = next(r for r in rows(store) if r["id"] == 14)
    row["prompt_tokens"] = 0
    execute(
        store,
        AUDIT.update()
        .where(AUDIT.c.id == 14)
        .values(prompt_tokens=0, hash=record_hash(row["prev_hash"], row)),
    )
    problem = verify(store).problem
    assert problem is not None and (problem.kind, problem.id) == ("modified", 14)
    assert "re-hashed" in problem.message


@pytest.mark.parametrize("victim", [1, 17, 30])
def test_deleted_record_is_named(store: Store, victim: int) -> None:
    fill(store)
    execute(store, AUDIT.delete().where(AUDIT.c.id == victim))
    problem = verify(store).problem
    assert problem is not None and (problem.kind, problem.id) == ("deleted", victim)


@BOTH
def test_inserted_record_is_named(store: Store) -> None:
    """Make room after record 20 (ids shifted up), forge a well-chained record 21."""
    fill(store)
    prev = next(r for r in rows(store) if r["id"] == 20)
    with store.engine.begin() as conn:
        conn.execute(AUDIT.update().where(AUDIT.c.id > 20).values(id=-AUDIT.c.id))
        conn.execute(AUDIT.update().where(AUDIT.c.id < 0).values(id=-AUDIT.c.id + 1))
        forged = {**prev, "id": 21, "request_id": "forged", "prev_hash": prev["hash"]}
        forged["hash"] = record_hash(forged["prev_hash"], forged)
        conn.execute(AUDIT.insert().values(forged))
    problem = verify(store).problem
    assert problem is not None and (problem.kind, problem.id) == ("inserted", 21)
    assert problem.request_id == "forged"


def test_record_appended_outside_the_chain_is_named(store: Store) -> None:
    fill(store)
    last = rows(store)[-1]
    execute(store, AUDIT.insert().values({**last, "id": last["id"] + 1, "request_id": "sneaky"}))
    problem = verify(store).problem
    assert problem is not None and (problem.kind, problem.request_id) == ("inserted", "sneaky")


def test_a_month_is_verified_without_reading_the_rest(store: Store) -> None:
    fill(store)
    execute(store, AUDIT.update().where(AUDIT.c.id == 2).values(cost_pico=0))  # day 1
    ranged = verify(store, day_start_us(DAYS[2]), day_start_us(DAYS[4]))
    assert ranged.ok and ranged.days == [DAYS[2], DAYS[3]] and ranged.records == 2 * PER_DAY
    assert not verify(store).ok


@BOTH
def test_prune_leaves_the_rest_verifiable_and_is_audited(store: Store) -> None:
    fill(store)
    kept_requests = (len(DAYS) - 2) * PER_DAY
    result = prune(
        store, date(2026, 11, 3), actor="carol", reason="retention 30d", today=date(2026, 12, 3)
    )
    assert result.days == [DAYS[0], DAYS[1]] and result.records == 2 * PER_DAY
    verdict = verify(store)
    assert verdict.ok and verdict.pruned_through == 2 * PER_DAY
    event = store.records_after(0, kinds=("prune",))[0]
    assert (event["actor"], event["reason"]) == ("carol", "retention 30d")
    detail = json.loads(event["detail"])
    assert detail["through_id"] == 2 * PER_DAY and detail["after"]["first_live_id"] == 13
    report = build_report(store, ReportQuery(group_by=["agent"]))
    assert report["totals"]["requests"] == kept_requests
    live = [r for r in rows(store) if r["kind"] == "request"]
    assert report["totals"]["prompt_tokens"] == sum(r["prompt_tokens"] for r in live)
    assert (
        prune(store, date(2026, 11, 3), actor="carol", reason="again", today=date(2026, 12, 3)).days
        == []
    )

    execute(store, AUDIT.delete().where(AUDIT.c.id == 13))  # the first record after the cut
    problem = verify(store).problem
    assert problem is not None and (problem.kind, problem.id) == ("deleted", 13)


def test_pruned_segments_need_a_prune_event(store: Store) -> None:
    fill(store)
    execute(store, AUDIT.delete().where(AUDIT.c.id <= PER_DAY))
    execute(store, ANCHORS.update().where(ANCHORS.c.day == DAYS[0]).values(pruned_at_us=1))
    problem = verify(store).problem
    assert problem is not None and "without a prune event" in problem.message


def test_prune_refuses_the_future_and_an_empty_reason(store: Store) -> None:
    with pytest.raises(CliError, match="future"):
        prune(store, date(2026, 12, 4), actor="a", reason="x", today=date(2026, 12, 3))
    with pytest.raises(CliError, match="reason"):
        prune(store, date(2026, 12, 1), actor="a", reason=" ", today=date(2026, 12, 3))


def test_operator_events_carry_actor_reason_before_after(store: Store) -> None:
    store.register_agent("bot-a", "team-ml", "production", actor="alice", reason="new")
    store.set_status("bot-a", "disabled", actor="bob", reason="runaway loop")
    store.set_status("bot-a", "active", actor="carol", reason="fixed")
    store.record_event(
        "trust_override",
        actor="dave",
        reason="pinned during incident",
        agent="bot-a",
        owner="team-ml",
        detail={"before": {"tier": "probation"}, "after": {"tier": "trusted"}},
    )
    events = rows(store)
    assert [(e["kind"], e["actor"], e["reason"]) for e in events] == [
        ("register", "alice", "new"),
        ("disable", "bob", "runaway loop"),
        ("enable", "carol", "fixed"),
        ("trust_override", "dave", "pinned during incident"),
    ]
    disable = json.loads(events[1]["detail"])
    assert disable["before"]["status"] == "active" and disable["after"]["status"] == "disabled"
    assert verify(store).ok


@BOTH
def test_concurrent_writers_keep_anchors_exact(store: Store) -> None:
    def writer(n: int) -> None:
        for i in range(8):
            store.append_records([{"request_id": f"w{n}-{i}", "ts_us": 10**15 + i}])

    def operator() -> None:
        for i in range(4):
            store.set_status(f"agent-{i}", "disabled", actor="op", reason="x")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=operator))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = verify(store)
    assert verdict.ok and verdict.records == 28
    with store.engine.connect() as conn:
        counts = conn.execute(sa.select(sa.func.sum(ANCHORS.c.count))).scalar_one()
    assert int(counts) == 28


def test_upgrade_backfills_anchors_and_rollups(store: Store) -> None:
    """A database from before m003/m004: records, no anchors, no rollups."""
    fill(store)
    with store.engine.begin() as conn:
        for table in ("audit_rollup_daily", "audit_rollup", "audit_anchors"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
        conn.execute(
            sa.text("DELETE FROM _agentctl_migrations WHERE name LIKE 'm003%' OR name LIKE 'm004%'")
        )
    assert store.migrate() == ["m003_audit_anchors_and_rollups", "m004_daily_rollup"]
    verdict = verify(store)
    assert verdict.ok and verdict.days == list(DAYS)
    totals = build_report(store, ReportQuery(group_by=["day"]))["totals"]
    assert totals["requests"] == len(DAYS) * PER_DAY


def test_verify_beside_a_live_writer_sees_no_false_break(store: Store) -> None:
    fill(store)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            store.append_records([{"request_id": f"live-{i}", "ts_us": day_start_us(DAYS[-1])}])
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        verdicts = [verify(store) for _ in range(15)]
    finally:
        stop.set()
        thread.join()
    assert all(v.ok for v in verdicts), [v.problem for v in verdicts if not v.ok]
    assert verdicts[-1].head_id > len(DAYS) * PER_DAY
