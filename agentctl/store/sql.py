"""`Store`: the durable state (agents, credentials, policy versions, audit) over SQL.

One implementation for SQLite and PostgreSQL through SQLAlchemy. The only
dialect-specific code is engine setup in `_engine()` (WAL, busy timeout, file
permissions for SQLite; driver name for PostgreSQL). What the gateway calls is Core
over `store/tables.py`; the CLI's registration and policy edits use the SQLModel classes
(`store/models.py`), imported only there, so a serving process never loads the ORM.

The API is synchronous on purpose: the gateway calls it from its recorder thread
and from `asyncio.to_thread` (never per request); the CLI calls it directly.

Writers that append to the audit chain serialise on the chain-head row: the first
statement of the transaction is an UPDATE of that row, which takes SQLite's write
lock (waiting up to the busy timeout) and a row lock on PostgreSQL.
"""

from __future__ import annotations

import json
import operator
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from hashlib import sha256
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agentctl.errors import CliError
from agentctl.store import driver, migrations, rollups, tables
from agentctl.store.chain import extend_anchor, record_hash
from agentctl.store.registry import Registry, load_registry

if TYPE_CHECKING:
    from agentctl.store.models import Agent

AUDIT = tables.audit
CHAIN = "main"
TOKEN_PREFIX = "agk_"


def now_us() -> int:
    return time.time_ns() // 1000


class StoreError(CliError):
    pass


def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URL; None for other URLs and in-memory."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    return Path(path) if path not in ("", ":memory:") else None


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL support needs the driver: pip install 'agentctl[postgres]'"
            ) from exc
        return sa.create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
    raise StoreError(
        f"unsupported database URL {url!r}; use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def hash_secret(secret: str) -> str:
    return sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """`agk_<key_id>_<secret>` -> (key_id, secret), or None if not of that form."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(key_id) != 16 or not secret:
        return None
    return key_id, secret


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"

    # -- lifecycle -------------------------------------------------------
    def close(self) -> None:
        self.engine.dispose()

    def pending_migrations(self) -> list[str]:
        with self.engine.connect() as conn:
            return migrations.pending(conn)

    def migrate(self) -> list[str]:
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(724001)"))
            ran = migrations.migrate(conn, now_us())
            heads = tables.chain_heads
            exists = conn.execute(sa.select(heads.c.chain).where(heads.c.chain == CHAIN)).first()
            if exists is None:
                conn.execute(heads.insert().values(chain=CHAIN, last_id=0, last_hash=""))
        return ran

    def ensure_ready(self) -> None:
        """SQLite migrates itself; PostgreSQL must be migrated explicitly."""
        if self.is_sqlite:
            self.migrate()
            return
        pending = self.pending_migrations()
        if pending:
            raise StoreError(
                f"database has {len(pending)} pending migration(s) ({', '.join(pending)}); "
                f"run `agentctl db migrate --db {self.safe_url}` first"
            )

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # -- change notification --------------------------------------------
    def state_version(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(tables.state_versions.c.version), 0))
            ).scalar_one()
        return int(value)

    def _bump(self, conn: Connection, topic: str) -> None:
        table = tables.state_versions
        updated = conn.execute(
            table.update().where(table.c.topic == topic).values(version=table.c.version + 1)
        )
        if updated.rowcount == 0:
            conn.execute(table.insert().values(topic=topic, version=1))

    # -- agents ----------------------------------------------------------
    def registry(self) -> Registry:
        return load_registry(self.engine)

    def get_agent(self, name: str) -> Agent | None:
        from sqlmodel import Session, select

        from agentctl.store.models import Agent

        with Session(self.engine) as session:
            return session.exec(select(Agent).where(Agent.name == name)).first()

    def list_agents(self, owner: str | None = None) -> list[Agent]:
        from sqlmodel import Session, select

        from agentctl.store.models import Agent

        with Session(self.engine) as session:
            query = select(Agent).order_by(Agent.name)  # type: ignore[arg-type]
            if owner:
                query = query.where(Agent.owner == owner)
            return list(session.exec(query))

    def register_agent(
        self, name: str, owner: str, purpose: str, *, actor: str, reason: str | None
    ) -> str:
        """Create (or bind a declared-only) agent with a new credential; return the token."""
        from sqlmodel import Session, select

        from agentctl.store.models import Agent, Credential

        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        token = f"{TOKEN_PREFIX}{key_id}_{secret}"
        ts = now_us()
        with Session(self.engine) as session, session.begin():
            agent = session.exec(select(Agent).where(Agent.name == name)).first()
            if agent is not None and agent.registered:
                raise StoreError(
                    f"agent {name!r} is already registered; use `agentctl agents rotate {name}` "
                    "for a new token"
                )
            before = _agent_view(agent) if agent else None
            if agent is None:
                agent = Agent(
                    name=name, owner=owner, purpose=purpose, created_at_us=ts, updated_at_us=ts
                )
            agent.owner, agent.purpose, agent.registered, agent.updated_at_us = (
                owner,
                purpose,
                True,
                ts,
            )
            session.add(agent)
            session.add(
                Credential(
                    agent=name, key_id=key_id, secret_hash=hash_secret(secret), created_at_us=ts
                )
            )
            session.flush()
            conn = session.connection()
            self._bump(conn, "agents")
            self._append_event(
                conn,
                "register",
                agent=agent,
                actor=actor,
                reason=reason,
                detail={"before": before, "after": _agent_view(agent), "key_id": key_id},
            )
        return token

    def set_status(
        self,
        name: str,
        status: str,
        *,
        actor: str,
        reason: str,
        owner: str | None = None,
        purpose: str | None = None,
        kind: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> sa.Row[Any]:
        """Enable or disable an agent. Declared-only names get a row so the switch holds.
        Core, not the ORM: the gateway calls it (breakers, trust containment)."""
        ts = now_us()
        table = tables.agents
        with self.engine.begin() as conn:
            self.lock_chain(conn)  # the event's lock first: concurrent switches serialise
            row = conn.execute(sa.select(table).where(table.c.name == name)).first()
            before = _agent_view(row)
            change = {
                "status": status,
                "status_reason": reason,
                "status_actor": actor,
                "status_at_us": ts,
                "updated_at_us": ts,
            }
            if row is None:
                if owner is None and purpose is None:  # as its requests last declared it
                    seen = last_declared(conn, name)
                    owner, purpose = seen.owner, seen.purpose
                conn.execute(
                    table.insert().values(
                        name=name,
                        owner=owner or "",
                        purpose=purpose or "",
                        registered=False,
                        created_at_us=ts,
                        **change,
                    )
                )
            else:
                conn.execute(table.update().where(table.c.name == name).values(**change))
            agent = conn.execute(sa.select(table).where(table.c.name == name)).one()
            self._bump(conn, "agents")
            self._append_event(
                conn,
                kind or ("disable" if status == "disabled" else "enable"),
                agent=agent,
                actor=actor,
                reason=reason,
                detail={"before": before, "after": _agent_view(agent), **(detail or {})},
            )
        return agent

    # -- policy ----------------------------------------------------------
    def active_policy(self) -> sa.Row[Any] | None:
        """The policy version in force (id, version, document, sources, applied_at_us,
        actor), or None before the first apply."""
        history = self.policy_history(1)
        return history[0] if history else None

    def policy_history(self, limit: int = 20) -> list[sa.Row[Any]]:
        table = tables.policy_versions
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(table).order_by(table.c.id.desc()).limit(limit)))

    def apply_policy(
        self,
        version: str,
        document: str,
        sources: Sequence[str],
        *,
        actor: str,
        reason: str | None,
        changes: Mapping[str, Any] | None = None,
    ) -> bool:
        """Make `document` the policy in force. False when it already is (no new row)."""
        from sqlmodel import Session, select

        from agentctl.store.models import PolicyVersion

        ts = now_us()
        with Session(self.engine) as session, session.begin():
            conn = session.connection()
            # Serialise concurrent applies through the chain lock taken by the event.
            current = session.exec(
                select(PolicyVersion).order_by(PolicyVersion.id.desc()).limit(1)  # type: ignore[union-attr]
            ).first()
            if current is not None and current.version == version:
                return False
            session.add(
                PolicyVersion(
                    version=version,
                    document=document,
                    sources=json.dumps(list(sources)),
                    applied_at_us=ts,
                    actor=actor,
                )
            )
            session.flush()
            self._bump(conn, "policy")
            self._append_event(
                conn,
                "policy_apply",
                agent=None,
                actor=actor,
                reason=reason,
                detail={
                    "before": current.version if current else None,
                    "after": version,
                    "sources": list(sources),
                    "changes": changes or {},
                },
            )
        return True

    # -- audit -----------------------------------------------------------
    def _append_event(
        self,
        conn: Connection,
        kind: str,
        *,
        agent: Any,  # anything with name, owner and purpose (an ORM Agent, a Core row)
        actor: str,
        reason: str | None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        row = {
            "kind": kind,
            "request_id": f"evt_{secrets.token_hex(12)}",
            "ts_us": now_us(),
            "agent": agent.name if agent else "",
            "owner": agent.owner if agent else "",
            "purpose": agent.purpose if agent else "",
            "outcome": "event",
            "actor": actor,
            "reason": reason,
            "detail": json.dumps(detail or {}, sort_keys=True, default=str),
        }
        self._append(conn, [row])

    def record_event(
        self,
        kind: str,
        *,
        actor: str,
        reason: str | None,
        agent: str = "",
        owner: str = "",
        purpose: str = "",
        detail: Mapping[str, Any] | None = None,
        bump: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            row = {
                "kind": kind,
                "request_id": f"evt_{secrets.token_hex(12)}",
                "ts_us": now_us(),
                "agent": agent,
                "owner": owner,
                "purpose": purpose,
                "outcome": "event",
                "actor": actor,
                "reason": reason,
                "detail": json.dumps(detail or {}, sort_keys=True, default=str),
            }
            self._append(conn, [row])
            if bump:
                self._bump(conn, bump)

    def append_records(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Append audit rows in one transaction; rows whose request_id exists are skipped."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            return self._append(conn, rows)

    def lock_chain(self, conn: Connection) -> tuple[int, str]:
        """Take the chain-head lock in `conn`'s transaction; return (last id, last hash).

        For operations that must commit atomically with their audit event (prune)."""
        heads = tables.chain_heads
        conn.execute(heads.update().where(heads.c.chain == CHAIN).values(last_id=heads.c.last_id))
        head = conn.execute(
            sa.select(heads.c.last_id, heads.c.last_hash).where(heads.c.chain == CHAIN)
        ).first()
        return (int(head[0]), str(head[1])) if head else (0, "")

    def append_in(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """`append_records` inside the caller's transaction (takes the chain lock)."""
        return self._append(conn, rows)

    def _append(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        # Driver-level statements (`store.driver`): this runs once per audit batch.
        run = conn.exec_driver_sql
        # Lock first (write lock on SQLite, row lock on PostgreSQL), then read.
        run(driver.sql(conn, _LOCK_HEAD), (CHAIN,))
        head = run(driver.sql(conn, _READ_HEAD), (CHAIN,)).first()
        last_id, last_hash = (int(head[0]), str(head[1])) if head else (0, "")
        ids = [r["request_id"] for r in rows]
        existing: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = _EXISTING.format(markers=driver.markers(len(chunk)))
            existing.update(r[0] for r in run(driver.sql(conn, query), tuple(chunk)))
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for raw in rows:
            if raw["request_id"] in existing or raw["request_id"] in seen:
                continue
            seen.add(raw["request_id"])
            row = _full_row(raw)
            last_id += 1
            row["id"] = last_id
            row["chain"] = CHAIN
            row["prev_hash"] = last_hash
            row["hash"] = last_hash = record_hash(last_hash, row)
            out.append(row)
        if out:
            run(driver.sql(conn, _INSERT), [_as_tuple(row) for row in out])
            extend_anchor(conn, CHAIN, out)
            rollups.add(conn, out)
            run(driver.sql(conn, _WRITE_HEAD), (last_id, last_hash, CHAIN))
        return len(out)

    def records_after(
        self,
        cursor: int,
        *,
        limit: int = 1000,
        kinds: Iterable[str] | None = ("request",),
        agent: str | None = None,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        query = sa.select(AUDIT).where(AUDIT.c.id > cursor).order_by(AUDIT.c.id).limit(limit)
        if kinds is not None:
            query = query.where(AUDIT.c.kind.in_(list(kinds)))
        if agent:
            query = query.where(AUDIT.c.agent == agent)
        if owner:
            query = query.where(AUDIT.c.owner == owner)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def last_id(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.max(AUDIT.c.id), 0))).scalar_one()
            )

    def usage_segments(self, edges_us: Sequence[int]) -> list[dict[str, Any]]:
        """Admitted requests from `edges_us[0]` on, summed per identity and segment.

        Segment i holds the records in [edges_us[i], edges_us[i + 1]) (the last one is
        open-ended) and comes back with `ts_us = edges_us[i]`. With the edges of every
        current quota window (`policy.windows.window_edges`), each segment lies wholly
        inside or outside each window, so quotas are rebuilt exactly from a few rows
        per agent. Refused requests never reserved anything and are left out."""
        if not edges_us:
            return []
        c = AUDIT.c
        segment = sa.case(
            *((c.ts_us >= edge, i) for i, edge in reversed(list(enumerate(edges_us)))),
            else_=0,
        ).label("segment")
        query = (
            sa.select(
                c.agent,
                c.owner,
                c.purpose,
                c.verification,
                segment,
                sa.func.count().label("requests"),
                sa.func.coalesce(sa.func.sum(c.prompt_tokens + c.completion_tokens), 0).label(
                    "tokens"
                ),
                sa.func.coalesce(sa.func.sum(c.cost_pico), 0).label("pico"),
            )
            .where(
                c.kind == "request",
                c.ts_us >= edges_us[0],
                c.outcome != "refused",
                c.agent != "",
            )
            .group_by(c.agent, c.owner, c.purpose, c.verification, segment)
        )
        with self.engine.connect() as conn:
            return [
                {**dict(r._mapping), "ts_us": edges_us[int(r.segment)]} for r in conn.execute(query)
            ]

    def count_records(self, kind: str = "request") -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(AUDIT).where(AUDIT.c.kind == kind)
                ).scalar_one()
            )


# Plain `str` keys: SQLAlchemy's names are a str subclass (`quoted_name`) that orjson
# refuses as a key, which sent every row's chain hash down the slow `json` path.
_DEFAULTS: dict[str, Any] = {
    str(c.name): (c.default.arg if c.default is not None and not callable(c.default.arg) else None)
    for c in AUDIT.columns
}
_COLUMNS = tuple(str(c.name) for c in AUDIT.columns)
_KNOWN = frozenset(_COLUMNS)
_PLAIN = frozenset({str})
_as_tuple = operator.itemgetter(*_COLUMNS)
_LOCK_HEAD = 'UPDATE chain_heads SET "last_id" = "last_id" WHERE "chain" = ?'
_READ_HEAD = 'SELECT "last_id", "last_hash" FROM chain_heads WHERE "chain" = ?'
_WRITE_HEAD = 'UPDATE chain_heads SET "last_id" = ?, "last_hash" = ? WHERE "chain" = ?'
_EXISTING = 'SELECT "request_id" FROM audit WHERE "request_id" IN ({markers})'
_INSERT = f"INSERT INTO audit ({driver.names(_COLUMNS)}) VALUES ({driver.markers(len(_COLUMNS))})"


def declared_agents(store: Store) -> list[SimpleNamespace]:
    """Agents seen in requests (the daily rollup), each with the owner and purpose of its
    latest day: who a policy change reaches besides registered or switched agents."""
    r = rollups.ROLLUP_DAILY.c
    query = sa.select(r.agent, r.owner, r.purpose, sa.func.max(r.day).label("day")).group_by(
        r.agent, r.owner, r.purpose
    )
    latest: dict[str, tuple[int, str, str]] = {}
    with store.engine.connect() as conn:
        for agent, owner, purpose, day in conn.execute(query.where(r.agent != "")):
            if agent not in latest or day > latest[agent][0]:
                latest[agent] = (day, owner, purpose)
    return [
        SimpleNamespace(name=name, owner=owner, purpose=purpose)
        for name, (_, owner, purpose) in sorted(latest.items())
    ]


def last_declared(conn: Connection, name: str) -> SimpleNamespace:
    """`name` with the owner and purpose of its latest request record (blank if it sent
    none): how an agent that never registered is filed in its team's views."""
    last = conn.execute(
        sa.select(AUDIT.c.owner, AUDIT.c.purpose)
        .where(AUDIT.c.agent == name, AUDIT.c.kind == "request")
        .order_by(AUDIT.c.ts_us.desc())
        .limit(1)
    ).first()
    return SimpleNamespace(
        name=name, owner=last.owner if last else "", purpose=last.purpose if last else ""
    )


def _full_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every column present with its default, so hashes cover a fixed set of fields.

    Unknown keys are dropped and NUL characters replaced (PostgreSQL refuses them in
    text), so one odd row (a client-chosen model name) can never poison a batch."""
    if raw.keys() <= _KNOWN:  # the usual row: every key a column
        row = {**_DEFAULTS, **raw}
    else:
        row = dict(_DEFAULTS)
        row.update((k, v) for k, v in raw.items() if k in _KNOWN)
    row.pop("id", None)
    texts = [v for v in row.values() if isinstance(v, str)]
    if "\x00" in "".join(texts) or not set(map(type, texts)) <= _PLAIN:
        for key, value in row.items():
            if isinstance(value, str):
                row[key] = value.replace("\x00", "\ufffd")  # also makes a plain str
    return row


def _agent_view(agent: Any) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {
        "name": agent.name,
        "owner": agent.owner,
        "purpose": agent.purpose,
        "status": agent.status,
        "status_reason": agent.status_reason,
        "registered": agent.registered,
    }


def open_store(url: str) -> Store:
    return Store(url)
