"""Exact hourly rollups of request records, so reports cost the same at any table size.

`audit_rollup` has one row per (UTC hour, agent, owner, purpose, model, outcome,
rule id) with integer sums. The appender updates it in the transaction that inserts
the records, under the chain-head lock, so a report read from the rollup reconciles
exactly with the records; `prune` subtracts what it deletes; `rebuild` recomputes it
from the records (migration, synthetic data, repair).

Hours are whole UTC hours (`ts_us // HOUR_US`). Reports in any time zone use them for
every hour that lies inside one of their buckets and read the records themselves
only for the partial hours at the edges (a `--since` that is not on the hour, or a
zone whose offset is not a whole number of hours); see `agentctl.reports`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

HOUR_US = 3_600_000_000
KEYS = ("agent", "owner", "purpose", "model", "outcome", "rule_id")
SUMS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "estimated",
    "unpriced",
    "cost_pico",
)

rollup_metadata = sa.MetaData()
ROLLUP = sa.Table(
    "audit_rollup",
    rollup_metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True),
    *(sa.Column(k, sa.String(), primary_key=True) for k in KEYS),
    *(sa.Column(s, sa.BigInteger, nullable=False) for s in SUMS),
)


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        int(row["ts_us"]) // HOUR_US,
        row.get("agent") or "",
        row.get("owner") or "",
        row.get("purpose") or "",
        row.get("model") or "",
        row.get("outcome") or "",
        row.get("rule_id") or "",
    )


def row_sums(row: Mapping[str, Any]) -> tuple[int, ...]:
    cost = row.get("cost_pico")
    return (
        1,
        int(row.get("prompt_tokens") or 0),
        int(row.get("completion_tokens") or 0),
        int(row.get("cached_tokens") or 0),
        int(row.get("reasoning_tokens") or 0),
        1 if row.get("usage_source") == "estimated" else 0,
        1 if cost is None else 0,
        int(cost or 0),
    )


def add(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Fold newly appended rows into the rollup (request rows only)."""
    totals: dict[tuple[Any, ...], list[int]] = {}
    for row in rows:
        if row.get("kind", "request") != "request":
            continue
        sums = row_sums(row)
        acc = totals.get(key := row_key(row))
        if acc is None:
            totals[key] = list(sums)
        else:
            for i, v in enumerate(sums):
                acc[i] += v
    if totals:
        _apply(conn, totals, sign=1)


def subtract(conn: Connection, first_id: int, last_id: int, audit: sa.Table) -> None:
    """Take the request records with ids in [first_id, last_id] out of the rollup."""
    c = audit.c
    hour = (c.ts_us // HOUR_US).label("hour")
    keys = [hour, *(sa.func.coalesce(c[k], "").label(k) for k in KEYS)]
    query = (
        sa.select(*keys, *raw_sums(audit))
        .where(c.kind == "request", c.id >= first_id, c.id <= last_id)
        .group_by(*keys)
    )
    totals = {
        tuple(r[: 1 + len(KEYS)]): [int(v) for v in r[1 + len(KEYS) :]]
        for r in conn.execute(query)
    }
    if totals:
        _apply(conn, totals, sign=-1)
        conn.execute(ROLLUP.delete().where(ROLLUP.c.requests <= 0))


def raw_sums(audit: sa.Table) -> list[Any]:
    """The rollup's sums as SQL over the records (same order as SUMS)."""
    c = audit.c

    def count_if(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    return [
        sa.func.count().label("requests"),
        sa.func.coalesce(sa.func.sum(c.prompt_tokens), 0).label("prompt_tokens"),
        sa.func.coalesce(sa.func.sum(c.completion_tokens), 0).label("completion_tokens"),
        sa.func.coalesce(sa.func.sum(c.cached_tokens), 0).label("cached_tokens"),
        sa.func.coalesce(sa.func.sum(c.reasoning_tokens), 0).label("reasoning_tokens"),
        count_if(c.usage_source == "estimated").label("estimated"),
        count_if(c.cost_pico.is_(None)).label("unpriced"),
        sa.func.coalesce(sa.func.sum(c.cost_pico), 0).label("cost_pico"),
    ]


def rebuild(conn: Connection, audit: sa.Table) -> None:
    """Recompute the whole rollup from the records (one GROUP BY)."""
    c = audit.c
    hour = (c.ts_us // HOUR_US).label("hour")
    keys = [hour, *(sa.func.coalesce(c[k], "").label(k) for k in KEYS)]
    select = sa.select(*keys, *raw_sums(audit)).where(c.kind == "request").group_by(*keys)
    conn.execute(ROLLUP.delete())
    conn.execute(ROLLUP.insert().from_select(["hour", *KEYS, *SUMS], select))


def _apply(conn: Connection, totals: dict[tuple[Any, ...], list[int]], *, sign: int) -> None:
    r = ROLLUP.c
    hours = sorted({k[0] for k in totals})
    existing: set[tuple[Any, ...]] = set()
    for start in range(0, len(hours), 500):
        query = sa.select(r.hour, *(r[k] for k in KEYS)).where(
            r.hour.in_(hours[start : start + 500])
        )
        existing.update(tuple(row) for row in conn.execute(query))
    updates, inserts = [], []
    for key, sums in totals.items():
        values = {f"v_{s}": sign * v for s, v in zip(SUMS, sums, strict=True)}
        names = {f"k_{k}": v for k, v in zip(("hour", *KEYS), key, strict=True)}
        if key in existing:
            updates.append({**names, **values})
        elif sign > 0:
            inserts.append(
                {**dict(zip(("hour", *KEYS), key, strict=True)), **dict(zip(SUMS, sums, strict=True))}
            )
    if updates:
        stmt = (
            ROLLUP.update()
            .where(*(r[k] == sa.bindparam(f"k_{k}") for k in ("hour", *KEYS)))
            .values({s: r[s] + sa.bindparam(f"v_{s}") for s in SUMS})
        )
        conn.execute(stmt, updates)
    if inserts:
        conn.execute(ROLLUP.insert(), inserts)
