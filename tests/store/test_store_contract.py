"""One contract for the Store, run against SQLite and a real PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.audit.verify import verify
from agentctl.store.chain import record_hash
from agentctl.store.sql import Store, StoreError, hash_secret, split_token
from tests.backends import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'c.db'}")
        s.migrate()
        yield s
        s.close()
        return
    gen = postgres_database()
    url = next(gen)
    s = Store(url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()
        next(gen, None)


def test_migrate_is_idempotent(store: Store) -> None:
    assert store.pending_migrations() == []
    assert store.migrate() == []


def test_an_older_store_loses_the_redundant_audit_indexes(store: Store) -> None:
    import sqlalchemy as sa

    def indexes() -> set[str]:
        with store.engine.connect() as conn:
            return {ix["name"] for ix in sa.inspect(conn).get_indexes("audit")}

    assert {"ix_audit_kind_ts", "ix_audit_agent_ts"} <= indexes()
    assert not {"ix_audit_kind", "ix_audit_agent"} & indexes()
    with store.engine.begin() as conn:  # as a store made before m006 has them
        conn.execute(sa.text("CREATE INDEX ix_audit_kind ON audit (kind)"))
        conn.execute(sa.text("CREATE INDEX ix_audit_agent ON audit (agent)"))
        conn.execute(
            sa.text("DELETE FROM _agentctl_migrations WHERE name = :n"),
            {"n": "m006_drop_redundant_audit_indexes"},
        )
    assert store.migrate() == ["m006_drop_redundant_audit_indexes"]
    assert not {"ix_audit_kind", "ix_audit_agent"} & indexes()


def test_register_and_registry(store: Store) -> None:
    token = store.register_agent("bot-a", "team-ml", "production", actor="op", reason="new")
    key_id, secret = split_token(token)
    reg = store.registry()
    assert reg.agents["bot-a"].registered
    assert reg.credentials[key_id].secret_hash == hash_secret(secret)
    with pytest.raises(StoreError, match="already registered"):
        store.register_agent("bot-a", "team-ml", "production", actor="op", reason=None)


def test_status_changes_bump_version_and_are_events(store: Store) -> None:
    v0 = store.state_version()
    store.set_status("declared-bot", "disabled", actor="alice", reason="loop", owner="team-x")
    assert store.state_version() > v0
    agent = store.get_agent("declared-bot")
    assert agent is not None and agent.status == "disabled" and not agent.registered
    events = store.records_after(0, kinds=("disable",))
    assert [(e["agent"], e["actor"], e["reason"]) for e in events] == [
        ("declared-bot", "alice", "loop")
    ]


def test_append_is_idempotent_and_chained(store: Store) -> None:
    rows = [
        {"request_id": f"r{i}", "ts_us": 1000 + i, "agent": "a", "cost_pico": i} for i in range(5)
    ]
    assert store.append_records(rows) == 5
    assert store.append_records([*rows[2:], {"request_id": "r9", "ts_us": 2000}]) == 1
    recs = store.records_after(0, limit=100, kinds=None)
    assert [r["id"] for r in recs] == list(range(1, 7))
    prev = ""
    for rec in recs:
        assert rec["prev_hash"] == prev
        body = {k: v for k, v in rec.items() if k != "hash"}
        assert rec["hash"] == record_hash(prev, body)
        prev = rec["hash"]


def test_concurrent_writers_keep_one_chain(store: Store) -> None:
    """The gateway's recorder and CLI operator events append from different connections."""

    def writer(n: int) -> None:
        for i in range(10):
            store.append_records([{"request_id": f"w{n}-{i}", "ts_us": i}])

    def operator() -> None:
        for i in range(5):
            store.set_status(f"agent-{i}", "disabled", actor="op", reason="x")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=operator))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = store.records_after(0, limit=1000, kinds=None)
    assert len(recs) == 35
    assert [r["id"] for r in recs] == list(range(1, 36))
    for a, b in itertools.pairwise(recs):
        assert b["prev_hash"] == a["hash"]


def test_records_after_filters(store: Store) -> None:
    store.append_records(
        [
            {"request_id": "a1", "ts_us": 1, "agent": "a", "owner": "t1"},
            {"request_id": "b1", "ts_us": 2, "agent": "b", "owner": "t2"},
            {"request_id": "a2", "ts_us": 3, "agent": "a", "owner": "t1"},
        ]
    )
    assert [r["request_id"] for r in store.records_after(0, agent="a")] == ["a1", "a2"]
    assert [r["request_id"] for r in store.records_after(1, owner="t1")] == ["a2"]
    assert store.last_id() == 3 and store.count_records() == 3


def test_odd_rows_are_normalised_and_still_verify(store: Store) -> None:
    """NUL characters (PostgreSQL refuses them), str subclasses and unknown keys: the
    appender's fast path must hand each to the slow path, and the chain must verify."""

    class Name(str):
        pass

    rows = [
        {"request_id": "n1", "ts_us": 1000, "agent": "a", "model": "gpt\x00evil"},
        {"request_id": "n2", "ts_us": 1001, "agent": Name("b"), "model": "m"},
        {"request_id": "n3", "ts_us": 1002, "agent": "c", "not_a_column": "x"},
    ]
    assert store.append_records(rows) == 3
    recs = {r["request_id"]: r for r in store.records_after(0, limit=10, kinds=None)}
    assert recs["n1"]["model"] == "gpt\ufffdevil"
    assert recs["n2"]["agent"] == "b" and type(recs["n2"]["agent"]) is str
    assert "not_a_column" not in recs["n3"]
    assert verify(store).ok
