"""What a gateway keeps in memory about agents: compact rows, loaded in one pass.

A gateway with 100,000 registered agents holds every one of them (identity checks
never touch the database), so each is a slots dataclass read with a plain SQL select,
not an ORM object: about 0.3 KB per agent and credential instead of several, and
seconds less at start-up. Repeated values (owners, purposes, statuses) are interned,
so 100,000 agents of 100 teams share 100 owner strings.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agentctl.store import tables

AGENTS = tables.agents
CREDENTIALS = tables.credentials


@dataclass(slots=True)
class KnownAgent:
    """An agent row as the gateway needs it; `status*` change in place on a local latch."""

    name: str
    owner: str
    purpose: str
    status: str = "active"
    status_reason: str | None = None
    status_actor: str | None = None
    registered: bool = False
    created_at_us: int = 0


@dataclass(frozen=True, slots=True)
class KnownCredential:
    agent: str
    key_id: str
    secret_hash: str
    expires_at_us: int | None = None


@dataclass(frozen=True, slots=True)
class Registry:
    """What the gateway caches in memory: agents by name, active credentials by key id."""

    agents: dict[str, KnownAgent]
    credentials: dict[str, KnownCredential]


def load_registry(engine: Engine) -> Registry:
    intern = sys.intern
    a, c = AGENTS.c, CREDENTIALS.c
    agents: dict[str, KnownAgent] = {}
    creds: dict[str, KnownCredential] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                a.name,
                a.owner,
                a.purpose,
                a.status,
                a.status_reason,
                a.status_actor,
                a.registered,
                a.created_at_us,
            )
        )
        for name, owner, purpose, status, reason, actor, registered, created in rows:
            agents[name] = KnownAgent(
                name,
                intern(owner),
                intern(purpose),
                intern(status),
                reason,
                intern(actor) if actor else actor,
                bool(registered),
                created,
            )
        active = conn.execute(
            sa.select(c.agent, c.key_id, c.secret_hash, c.expires_at_us).where(c.status == "active")
        )
        for agent, key_id, secret_hash, expires in active:
            known = agents.get(agent)
            creds[key_id] = KnownCredential(
                known.name if known else agent, key_id, secret_hash, expires
            )
    return Registry(agents, creds)
