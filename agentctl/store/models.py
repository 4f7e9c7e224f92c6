"""SQLModel tables. Identical on SQLite and PostgreSQL; no dialect-specific types.

Times are integer microseconds since the epoch (UTC) so ordering, range queries and
time-zone bucketing behave the same on every backend. Money is integer pico-dollars
(`cost_pico`), NULL when the model could not be priced.

`AuditRecord` holds both request records (`kind = "request"`) and operator/system
events (`kind` = register, disable, enable, policy_apply, trust, prune, ...), so one
hash chain covers everything an auditor needs, and one cursor (`id`) feeds `tail`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    owner: str = Field(index=True)
    purpose: str
    status: str = "active"  # active | disabled
    status_reason: str | None = None
    status_actor: str | None = None
    status_at_us: int | None = Field(default=None, sa_type=BigInteger)
    registered: bool = False  # True when a credential binds the name
    created_at_us: int = Field(sa_type=BigInteger)
    updated_at_us: int = Field(sa_type=BigInteger)


class Credential(SQLModel, table=True):
    __tablename__ = "credentials"

    id: int | None = Field(default=None, primary_key=True)
    agent: str = Field(index=True)
    key_id: str = Field(index=True, unique=True)
    secret_hash: str  # hex sha256 of the secret part; the token itself is never stored
    status: str = "active"  # active | revoked
    created_at_us: int = Field(sa_type=BigInteger)
    # set during a rotation grace period
    expires_at_us: int | None = Field(default=None, sa_type=BigInteger)
    revoked_at_us: int | None = Field(default=None, sa_type=BigInteger)


class PolicyVersion(SQLModel, table=True):
    """Append-only apply log: the row with the highest id is in force. Rows never change;
    re-applying older content appends a new row with the same content hash."""

    __tablename__ = "policy_versions"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(index=True)  # content hash
    document: str  # canonical JSON of the validated policy set
    sources: str  # JSON list of file names
    applied_at_us: int = Field(sa_type=BigInteger)
    actor: str


class StateVersion(SQLModel, table=True):
    """One row per topic; bumped on every operator change so gateways reload within a poll."""

    __tablename__ = "state_versions"

    topic: str = Field(primary_key=True)
    version: int = 0


class ChainHead(SQLModel, table=True):
    """Last hash of the audit chain; locked by every writer that appends."""

    __tablename__ = "chain_heads"

    chain: str = Field(primary_key=True)
    last_id: int = Field(default=0, sa_type=BigInteger)
    last_hash: str = ""


class AuditRecord(SQLModel, table=True):
    __tablename__ = "audit"

    # Assigned by the appender (contiguous), never by the database.
    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    kind: str = Field(default="request", index=True)
    request_id: str = Field(index=True, unique=True)
    ts_us: int = Field(index=True, sa_type=BigInteger)
    agent: str = Field(default="", index=True)
    owner: str = ""
    purpose: str = ""
    extensions: str = ""  # "k=v; k2=v2"
    verification: str = ""
    key_id: str | None = None
    endpoint: str = ""
    model: str = ""
    upstream_model: str = ""
    upstream: str = ""
    status: int = 0
    outcome: str = ""  # served | refused | error | interrupted | event
    rule_id: str | None = None
    shadow_rules: str = ""
    message: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: str = "none"  # reported | estimated | none
    cost_pico: int | None = Field(default=None, sa_type=BigInteger)
    reserved_pico: int = Field(default=0, sa_type=BigInteger)
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    stream: bool = False
    client: str = ""
    policy_version: str = ""
    attempts: str = ""  # JSON list of upstream attempts
    actor: str | None = None
    reason: str | None = None
    detail: str | None = None  # JSON: before/after for events, evidence for trust
    chain: str = "main"
    prev_hash: str = ""
    hash: str = ""


class TrustSnapshot(SQLModel, table=True):
    """The trust engine's state, saved by each gateway instance every few seconds."""

    __tablename__ = "trust_snapshots"

    instance: str = Field(primary_key=True)
    updated_at_us: int = Field(sa_type=BigInteger)
    state: str  # JSON from TrustEngine.snapshot()


class TrustOverride(SQLModel, table=True):
    """Operator pins, unpins and rebaselines, applied by every gateway in id order."""

    __tablename__ = "trust_overrides"

    id: int | None = Field(default=None, primary_key=True)
    agent: str = Field(index=True)
    action: str  # pin | unpin | rebaseline
    tier: str | None = None
    ttl_s: float | None = None
    reason: str | None = None
    actor: str
    created_at_us: int = Field(sa_type=BigInteger)
