"""Ordered, named schema migrations recorded in `_agentctl_migrations` (llm's pattern).

Rules: never edit or rename a shipped migration; append a new one. Each takes a
SQLAlchemy connection and uses portable DDL so it runs on SQLite and PostgreSQL.
`m001_initial` creates the tables as declared in `store/tables.py` at the time;
later migrations that add columns must check the inspector first, because a fresh
database already gets the current shape from m001.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentctl.store import chain, rollups, tables

Migration = Callable[[Connection], None]


def m001_initial(conn: Connection) -> None:
    first = [
        tables.agents,
        tables.credentials,
        tables.policy_versions,
        tables.state_versions,
        tables.chain_heads,
        tables.audit,
    ]
    tables.metadata.create_all(conn, tables=first)


def m002_report_indexes(conn: Connection) -> None:
    existing = {ix["name"] for ix in sa.inspect(conn).get_indexes("audit")}
    for name, cols in (
        ("ix_audit_kind_ts", "kind, ts_us"),
        ("ix_audit_owner_ts", "owner, ts_us"),
        ("ix_audit_agent_ts", "agent, ts_us"),
    ):
        if name not in existing:
            conn.execute(sa.text(f"CREATE INDEX {name} ON audit ({cols})"))


def m003_audit_anchors_and_rollups(conn: Connection) -> None:
    """Daily chain anchors and hourly report rollups, backfilled from existing records."""
    audit = tables.audit
    chain.ANCHORS.create(conn, checkfirst=True)
    rollups.ROLLUP.create(conn, checkfirst=True)
    c = audit.c
    rows = conn.execute(
        sa.select(c.id, c.ts_us, c.prev_hash, c.hash, c.chain).order_by(c.id)
    ).mappings()
    anchors = chain.build_anchors(list(rows))  # type: ignore[arg-type]
    if anchors:
        conn.execute(chain.ANCHORS.insert(), anchors)
    rollups.rebuild(conn, audit, (rollups.HOURLY,))  # the grain that existed then


def m004_daily_rollup(conn: Connection) -> None:
    """Daily report rollup (reports not cut by the hour read ~24x fewer rows)."""
    rollups.ROLLUP_DAILY.create(conn, checkfirst=True)
    rollups.rebuild(conn, tables.audit, (rollups.DAILY,))


def m005_trust(conn: Connection) -> None:
    """Trust engine snapshots and operator overrides (pin, unpin, rebaseline)."""
    tables.trust_snapshots.create(conn, checkfirst=True)
    tables.trust_overrides.create(conn, checkfirst=True)


def m006_drop_redundant_audit_indexes(conn: Connection) -> None:
    """`audit.kind` and `audit.agent` alone: every query on them is served by the
    (kind, ts_us) and (agent, ts_us) indexes, and each index is written on every append
    (two of eight b-trees; about 5 µs a row on SQLite)."""
    for name in ("ix_audit_kind", "ix_audit_agent"):
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))


MIGRATIONS: list[Migration] = [
    m001_initial,
    m002_report_indexes,
    m003_audit_anchors_and_rollups,
    m004_daily_rollup,
    m005_trust,
    m006_drop_redundant_audit_indexes,
]

_TABLE = sa.Table(
    "_agentctl_migrations",
    sa.MetaData(),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at_us", sa.BigInteger, nullable=False),
)


def applied(conn: Connection) -> set[str]:
    if not sa.inspect(conn).has_table(_TABLE.name):
        return set()
    return {row[0] for row in conn.execute(sa.select(_TABLE.c.name))}


def pending(conn: Connection) -> list[str]:
    done = applied(conn)
    return [m.__name__ for m in MIGRATIONS if m.__name__ not in done]


def migrate(conn: Connection, now_us: int) -> list[str]:
    """Apply pending migrations in order; return the names applied. Idempotent."""
    _TABLE.metadata.create_all(conn)
    done = applied(conn)
    ran: list[str] = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        migration(conn)
        conn.execute(_TABLE.insert().values(name=migration.__name__, applied_at_us=now_us))
        ran.append(migration.__name__)
    return ran
