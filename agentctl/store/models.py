"""SQLModel classes over the tables of `store/tables.py`, for the CLI's ORM code.

Every column comes from `tables.py` (copied, so the Core and ORM tables cannot drift;
a test compares their DDL on SQLite and PostgreSQL). The gateway process uses the Core
tables only and never imports this module.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlmodel import Field, SQLModel

from agentctl.store import tables


def _col(table: Table, name: str, default: Any = ...) -> Any:
    """A field whose column is `table.c[name]` (a copy: a column has one table)."""
    return Field(default=default, sa_column=table.c[name]._copy())


_A, _C, _P = tables.agents, tables.credentials, tables.policy_versions
_S, _H, _R = tables.state_versions, tables.chain_heads, tables.audit
_TS, _TO = tables.trust_snapshots, tables.trust_overrides


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = _col(_A, "id", None)
    name: str = _col(_A, "name")
    owner: str = _col(_A, "owner")
    purpose: str = _col(_A, "purpose")
    status: str = _col(_A, "status", "active")
    status_reason: str | None = _col(_A, "status_reason", None)
    status_actor: str | None = _col(_A, "status_actor", None)
    status_at_us: int | None = _col(_A, "status_at_us", None)
    registered: bool = _col(_A, "registered", False)
    created_at_us: int = _col(_A, "created_at_us")
    updated_at_us: int = _col(_A, "updated_at_us")


class Credential(SQLModel, table=True):
    __tablename__ = "credentials"

    id: int | None = _col(_C, "id", None)
    agent: str = _col(_C, "agent")
    key_id: str = _col(_C, "key_id")
    secret_hash: str = _col(_C, "secret_hash")
    status: str = _col(_C, "status", "active")
    created_at_us: int = _col(_C, "created_at_us")
    expires_at_us: int | None = _col(_C, "expires_at_us", None)
    revoked_at_us: int | None = _col(_C, "revoked_at_us", None)


class PolicyVersion(SQLModel, table=True):
    __tablename__ = "policy_versions"

    id: int | None = _col(_P, "id", None)
    version: str = _col(_P, "version")
    document: str = _col(_P, "document")
    sources: str = _col(_P, "sources")
    applied_at_us: int = _col(_P, "applied_at_us")
    actor: str = _col(_P, "actor")


class StateVersion(SQLModel, table=True):
    __tablename__ = "state_versions"

    topic: str = _col(_S, "topic")
    version: int = _col(_S, "version", 0)


class ChainHead(SQLModel, table=True):
    __tablename__ = "chain_heads"

    chain: str = _col(_H, "chain")
    last_id: int = _col(_H, "last_id", 0)
    last_hash: str = _col(_H, "last_hash", "")


class AuditRecord(SQLModel, table=True):
    __tablename__ = "audit"

    id: int | None = _col(_R, "id", None)
    kind: str = _col(_R, "kind", "request")
    request_id: str = _col(_R, "request_id")
    ts_us: int = _col(_R, "ts_us")
    agent: str = _col(_R, "agent", "")
    owner: str = _col(_R, "owner", "")
    purpose: str = _col(_R, "purpose", "")
    extensions: str = _col(_R, "extensions", "")
    verification: str = _col(_R, "verification", "")
    key_id: str | None = _col(_R, "key_id", None)
    endpoint: str = _col(_R, "endpoint", "")
    model: str = _col(_R, "model", "")
    upstream_model: str = _col(_R, "upstream_model", "")
    upstream: str = _col(_R, "upstream", "")
    status: int = _col(_R, "status", 0)
    outcome: str = _col(_R, "outcome", "")
    rule_id: str | None = _col(_R, "rule_id", None)
    shadow_rules: str = _col(_R, "shadow_rules", "")
    message: str | None = _col(_R, "message", None)
    prompt_tokens: int = _col(_R, "prompt_tokens", 0)
    completion_tokens: int = _col(_R, "completion_tokens", 0)
    cached_tokens: int = _col(_R, "cached_tokens", 0)
    cache_write_tokens: int = _col(_R, "cache_write_tokens", 0)
    reasoning_tokens: int = _col(_R, "reasoning_tokens", 0)
    usage_source: str = _col(_R, "usage_source", "none")
    cost_pico: int | None = _col(_R, "cost_pico", None)
    reserved_pico: int = _col(_R, "reserved_pico", 0)
    latency_ms: float = _col(_R, "latency_ms", 0.0)
    ttfb_ms: float | None = _col(_R, "ttfb_ms", None)
    stream: bool = _col(_R, "stream", False)
    client: str = _col(_R, "client", "")
    policy_version: str = _col(_R, "policy_version", "")
    attempts: str = _col(_R, "attempts", "")
    actor: str | None = _col(_R, "actor", None)
    reason: str | None = _col(_R, "reason", None)
    detail: str | None = _col(_R, "detail", None)
    chain: str = _col(_R, "chain", "main")
    prev_hash: str = _col(_R, "prev_hash", "")
    hash: str = _col(_R, "hash", "")


class TrustSnapshot(SQLModel, table=True):
    __tablename__ = "trust_snapshots"

    instance: str = _col(_TS, "instance")
    updated_at_us: int = _col(_TS, "updated_at_us")
    state: str = _col(_TS, "state")


class TrustOverride(SQLModel, table=True):
    __tablename__ = "trust_overrides"

    id: int | None = _col(_TO, "id", None)
    agent: str = _col(_TO, "agent")
    action: str = _col(_TO, "action")
    tier: str | None = _col(_TO, "tier", None)
    ttl_s: float | None = _col(_TO, "ttl_s", None)
    reason: str | None = _col(_TO, "reason", None)
    actor: str = _col(_TO, "actor")
    created_at_us: int = _col(_TO, "created_at_us")
