"""The schema, in SQLAlchemy Core: what the gateway process reads and writes.

Identical on SQLite and PostgreSQL; no dialect-specific types. Times are integer
microseconds since the epoch (UTC) so ordering, range queries and time-zone bucketing
behave the same on every backend. Money is integer pico-dollars (`cost_pico`), NULL when
the model could not be priced.

`audit` holds both request records (`kind = "request"`) and operator/system events
(`kind` = register, disable, enable, policy_apply, trust, prune, ...), so one hash chain
covers everything an auditor needs, and one cursor (`id`) feeds `tail`.

The CLI's ORM classes (`store/models.py`, SQLModel) take their columns from here, so the
two cannot drift; the serving process never imports the ORM (~6 MB and ~0.1 s of start-up;
docs/decisions.md, "Start-up, memory and growth").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table

metadata = MetaData()

# Column defaults are client-side (no DDL): they fill what an insert leaves out. The
# audit appender starts every row from them, so they are part of what its hash covers
# and must never change.


def _str(
    name: str, default: Any = None, *, null: bool = False, index: bool = False, unique: bool = False
) -> Column:
    return Column(
        name, String, nullable=null, index=index or None, unique=unique or None, default=default
    )


def _big(name: str, default: Any = None, *, null: bool = False, index: bool = False) -> Column:
    return Column(name, BigInteger, nullable=null, index=index or None, default=default)


def _int(name: str, default: Any = None) -> Column:
    return Column(name, Integer, nullable=False, default=default)


def _id() -> Column:
    return Column("id", Integer, primary_key=True)


agents = Table(
    "agents",
    metadata,
    _id(),
    _str("name", index=True, unique=True),
    _str("owner", index=True),
    _str("purpose"),
    _str("status", "active"),  # active | disabled
    _str("status_reason", null=True),
    _str("status_actor", null=True),
    _big("status_at_us", null=True),
    Column("registered", Boolean, nullable=False, default=False),  # a credential binds the name
    _big("created_at_us"),
    _big("updated_at_us"),
)

credentials = Table(
    "credentials",
    metadata,
    _id(),
    _str("agent", index=True),
    _str("key_id", index=True, unique=True),
    _str("secret_hash"),  # hex sha256 of the secret part; the token itself is never stored
    _str("status", "active"),  # active | revoked
    _big("created_at_us"),
    _big("expires_at_us", null=True),  # set during a rotation grace period
    _big("revoked_at_us", null=True),
)

# Append-only apply log: the row with the highest id is in force. Rows never change;
# re-applying older content appends a new row with the same content hash.
policy_versions = Table(
    "policy_versions",
    metadata,
    _id(),
    _str("version", index=True),  # content hash
    _str("document"),  # canonical JSON of the validated policy set
    _str("sources"),  # JSON list of file names
    _big("applied_at_us"),
    _str("actor"),
)

# One row per topic; bumped on every operator change so gateways reload within a poll.
state_versions = Table(
    "state_versions",
    metadata,
    Column("topic", String, primary_key=True),
    _int("version", 0),
)

# Last hash of the audit chain; locked by every writer that appends.
chain_heads = Table(
    "chain_heads",
    metadata,
    Column("chain", String, primary_key=True),
    _big("last_id", 0),
    _str("last_hash", ""),
)

audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger, primary_key=True),  # assigned by the appender (contiguous)
    # `kind` and `agent` alone are served by the (kind, ts_us) and (agent, ts_us) indexes
    # of migration m002 (m006 drops the single-column ones older stores have).
    _str("kind", "request"),
    _str("request_id", index=True, unique=True),
    _big("ts_us", index=True),
    _str("agent", ""),
    _str("owner", ""),
    _str("purpose", ""),
    _str("extensions", ""),  # "k=v; k2=v2"
    _str("verification", ""),
    _str("key_id", null=True),
    _str("endpoint", ""),
    _str("model", ""),
    _str("upstream_model", ""),
    _str("upstream", ""),
    _int("status", 0),
    _str("outcome", ""),  # served | refused | error | interrupted | disconnected | event
    _str("rule_id", null=True),
    _str("shadow_rules", ""),
    _str("message", null=True),
    _int("prompt_tokens", 0),
    _int("completion_tokens", 0),
    _int("cached_tokens", 0),
    _int("cache_write_tokens", 0),
    _int("reasoning_tokens", 0),
    _str("usage_source", "none"),  # reported | estimated | none
    _big("cost_pico", null=True),
    _big("reserved_pico", 0),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("ttfb_ms", Float, nullable=True),
    Column("stream", Boolean, nullable=False, default=False),
    _str("client", ""),
    _str("policy_version", ""),
    _str("attempts", ""),  # JSON list of upstream attempts
    _str("actor", null=True),
    _str("reason", null=True),
    _str("detail", null=True),  # JSON: before/after for events, evidence for trust
    _str("chain", "main"),
    _str("prev_hash", ""),
    _str("hash", ""),
)

# The trust engine's state, saved by each gateway instance every few seconds.
trust_snapshots = Table(
    "trust_snapshots",
    metadata,
    Column("instance", String, primary_key=True),
    _big("updated_at_us"),
    _str("state"),  # JSON from TrustEngine.snapshot()
)

# Operator pins, unpins and rebaselines, applied by every gateway in id order.
trust_overrides = Table(
    "trust_overrides",
    metadata,
    _id(),
    _str("agent", index=True),
    _str("action"),  # pin | unpin | rebaseline
    _str("tier", null=True),
    Column("ttl_s", Float, nullable=True),
    _str("reason", null=True),
    _str("actor"),
    _big("created_at_us"),
)
