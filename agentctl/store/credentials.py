"""Credential lifecycle and trust records in the store: rotate, revoke, trust snapshots,
operator overrides. Every change is an audit event in the same transaction and bumps
the state version, so gateways pick it up within one poll.

What a gateway calls (trust snapshots and overrides, `revoke_key`) is Core over
`store/tables.py`; the CLI-only rotate/revoke/list use the SQLModel classes, imported
there (a serving process never loads the ORM)."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from agentctl.store import tables
from agentctl.store.sql import (
    TOKEN_PREFIX,
    Store,
    StoreError,
    hash_secret,
    last_declared,
    now_us,
)

if TYPE_CHECKING:
    from sqlmodel import Session

    from agentctl.store.models import Agent, Credential


def _agent(session: Session, name: str) -> Agent:
    from sqlmodel import select

    from agentctl.store.models import Agent

    agent = session.exec(select(Agent).where(Agent.name == name)).first()
    if agent is None or not agent.registered:
        raise StoreError(
            f"agent {name!r} has no credential; register it first: "
            f"agentctl agents register {name} --owner ... --purpose ..."
        )
    return agent


def rotate(store: Store, name: str, *, grace_s: float, actor: str, reason: str | None) -> str:
    """A new token for `name`; the old ones keep working for `grace_s`, then expire."""
    from sqlmodel import Session, select

    from agentctl.store.models import Credential

    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    ts = now_us()
    expires = ts + int(grace_s * 1_000_000)
    with Session(store.engine) as session, session.begin():
        agent = _agent(session, name)
        old = list(
            session.exec(
                select(Credential).where(Credential.agent == name, Credential.status == "active")
            )
        )
        old_ids = [c.key_id for c in old]
        for cred in old:
            if cred.expires_at_us is None or cred.expires_at_us > expires:
                cred.expires_at_us = expires
            if grace_s <= 0:
                cred.status, cred.revoked_at_us = "revoked", ts
            session.add(cred)
        session.add(
            Credential(agent=name, key_id=key_id, secret_hash=hash_secret(secret), created_at_us=ts)
        )
        session.flush()
        conn = session.connection()
        store._bump(conn, "agents")
        store._append_event(
            conn,
            "rotate",
            agent=agent,
            actor=actor,
            reason=reason,
            detail={
                "new_key_id": key_id,
                "old_key_ids": old_ids,
                "grace_s": grace_s,
            },
        )
    return f"{TOKEN_PREFIX}{key_id}_{secret}"


def revoke(store: Store, name: str, *, actor: str, reason: str | None) -> list[str]:
    """Revoke every credential of `name` now; returns the key ids."""
    from sqlmodel import Session, select

    from agentctl.store.models import Credential

    ts = now_us()
    with Session(store.engine) as session, session.begin():
        agent = _agent(session, name)
        creds = list(
            session.exec(
                select(Credential).where(Credential.agent == name, Credential.status == "active")
            )
        )
        key_ids = [c.key_id for c in creds]
        for cred in creds:
            cred.status, cred.revoked_at_us = "revoked", ts
            session.add(cred)
        session.flush()
        conn = session.connection()
        store._bump(conn, "agents")
        store._append_event(
            conn, "revoke", agent=agent, actor=actor, reason=reason, detail={"key_ids": key_ids}
        )
    return key_ids


def revoke_key(store: Store, key_id: str, *, actor: str, reason: str) -> None:
    """Revoke one credential (a gateway's containment of a stolen token)."""
    creds, agents = tables.credentials, tables.agents
    with store.engine.begin() as conn:
        store.lock_chain(conn)  # the event's lock first: concurrent revokes serialise
        cred = conn.execute(sa.select(creds).where(creds.c.key_id == key_id)).first()
        if cred is None or cred.status == "revoked":
            return
        conn.execute(
            creds.update()
            .where(creds.c.key_id == key_id)
            .values(status="revoked", revoked_at_us=now_us())
        )
        agent = conn.execute(sa.select(agents).where(agents.c.name == cred.agent)).first()
        store._bump(conn, "agents")
        store._append_event(
            conn, "revoke", agent=agent, actor=actor, reason=reason, detail={"key_ids": [key_id]}
        )


def credentials_of(store: Store, name: str) -> list[Credential]:
    from sqlmodel import Session, select

    from agentctl.store.models import Credential

    with Session(store.engine) as session:
        query = select(Credential).where(Credential.agent == name).order_by(Credential.id)  # type: ignore[arg-type]
        return list(session.exec(query))


# -- trust ------------------------------------------------------------------------------
def save_snapshot(store: Store, instance: str, state: str) -> None:
    table = tables.trust_snapshots
    with store.engine.begin() as conn:
        updated = conn.execute(
            table.update()
            .where(table.c.instance == instance)
            .values(state=state, updated_at_us=now_us())
        )
        if updated.rowcount == 0:
            conn.execute(
                table.insert().values(instance=instance, state=state, updated_at_us=now_us())
            )


def latest_snapshot(store: Store) -> dict[str, Any] | None:
    table = tables.trust_snapshots
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(table.c.state).order_by(table.c.updated_at_us.desc()).limit(1)
        ).first()
    return json.loads(row[0]) if row else None


def add_override(
    store: Store,
    agent: str,
    action: str,
    *,
    actor: str,
    reason: str | None,
    tier: str | None = None,
    ttl_s: float | None = None,
    audited: bool = True,
) -> None:
    """An operator override (pin, unpin, rebaseline; audited as an operator event), or a
    containment shared by one gateway with the others (`contain`, `audited=False`: the
    gateway that contained the agent audits it as a trust event, each peer as its own)."""
    agents = tables.agents
    with store.engine.begin() as conn:
        if audited:
            store.lock_chain(conn)  # the event's lock first: concurrent writers serialise
        conn.execute(
            tables.trust_overrides.insert().values(
                agent=agent,
                action=action,
                tier=tier,
                ttl_s=ttl_s,
                reason=reason,
                actor=actor,
                created_at_us=now_us(),
            )
        )
        store._bump(conn, "trust")
        if not audited:
            return
        target: Any = conn.execute(sa.select(agents).where(agents.c.name == agent)).first()
        if target is None:  # declared, never registered: named as its requests last were
            target = last_declared(conn, agent)
        store._append_event(
            conn,
            f"trust_{action}",
            agent=target,
            actor=actor,
            reason=reason,
            detail={"agent": agent, "tier": tier, "ttl_s": ttl_s},
        )


def overrides_after(store: Store, cursor: int) -> list[dict[str, Any]]:
    table = tables.trust_overrides
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.id > cursor).order_by(table.c.id))
        return [dict(r._mapping) for r in rows]


def last_override_id(store: Store) -> int:
    table = tables.trust_overrides
    with store.engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
        )
