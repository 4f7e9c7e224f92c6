"""Exact rollups of request records, so reports cost the same at any table size.

`audit_rollup` has one row per (UTC hour, agent, owner, purpose, model, outcome, rule
id) with integer sums; `audit_rollup_daily` the same per UTC day (about 24 times fewer
rows, for reports that are not cut by the hour). The appender updates both in the
transaction that inserts the records, under the chain-head lock, so a report read
from them reconciles exactly with the records; `prune` subtracts what it deletes;
`rebuild` recomputes them from the records (migration, synthetic data, repair).

Reports in any time zone read whole UTC days and hours from here and the records
themselves only for the partial hours at the edges (a `--since` that is not on the
hour, or a zone whose offset is not a whole number of hours); see `agentctl.reports`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentctl.store import driver

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
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


def _table(name: str, unit: str) -> sa.Table:
    return sa.Table(
        name,
        rollup_metadata,
        sa.Column(unit, sa.BigInteger, primary_key=True),
        *(sa.Column(k, sa.String(), primary_key=True) for k in KEYS),
        *(sa.Column(s, sa.BigInteger, nullable=False) for s in SUMS),
    )


@dataclass(frozen=True)
class Grain:
    """One rollup table: `unit` is its time column (whole UTC hours or days since epoch)."""

    table: sa.Table
    unit: str
    span_us: int


ROLLUP = _table("audit_rollup", "hour")
ROLLUP_DAILY = _table("audit_rollup_daily", "day")
HOURLY = Grain(ROLLUP, "hour", HOUR_US)
DAILY = Grain(ROLLUP_DAILY, "day", DAY_US)
GRAINS = (HOURLY, DAILY)


def row_key(row: Mapping[str, Any], span_us: int = HOUR_US) -> tuple[Any, ...]:
    return (
        int(row["ts_us"]) // span_us,
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
    """Fold newly appended rows into every rollup (request rows only): summed in Python,
    then one driver-level upsert `executemany` per grain (`store.driver`). Rows are
    grouped by their hourly key once; coarser grains regroup the hourly groups (a grain's
    span is a whole number of hours) and each group's columns are summed by `sum`."""
    requests = [r for r in rows if r.get("kind", "request") == "request"]
    if not requests:
        return
    hourly: dict[tuple[Any, ...], list[tuple[int, ...]]] = {}
    for row in requests:
        key = row_key(row, HOUR_US)
        group = hourly.get(key)
        if group is None:
            hourly[key] = [row_sums(row)]
        else:
            group.append(row_sums(row))
    for grain in GRAINS:
        hours = grain.span_us // HOUR_US
        groups = hourly
        if hours != 1:
            groups = {}
            for key, sums in hourly.items():
                groups.setdefault((key[0] // hours, *key[1:]), []).extend(sums)
        conn.exec_driver_sql(
            driver.sql(conn, _upsert(grain)),
            [(*key, *map(sum, zip(*sums, strict=True))) for key, sums in groups.items()],
        )


def _upsert(grain: Grain) -> str:
    name = grain.table.name
    keys = (grain.unit, *KEYS)
    return (
        f"INSERT INTO {name} ({driver.names([*keys, *SUMS])})"
        f" VALUES ({driver.markers(len(keys) + len(SUMS))})"
        f" ON CONFLICT ({driver.names(keys)}) DO UPDATE SET "
        + ", ".join(f'"{s}" = {name}."{s}" + excluded."{s}"' for s in SUMS)
    )


def _grouped(audit: sa.Table, grain: Grain) -> tuple[list[Any], sa.Select[Any]]:
    c = audit.c
    unit = (c.ts_us // grain.span_us).label(grain.unit)
    keys = [unit, *(sa.func.coalesce(c[k], "").label(k) for k in KEYS)]
    return keys, sa.select(*keys, *raw_sums(audit)).where(c.kind == "request")


def subtract(conn: Connection, first_id: int, last_id: int, audit: sa.Table) -> None:
    """Take the request records with ids in [first_id, last_id] out of every rollup."""
    c = audit.c
    for grain in GRAINS:
        keys, query = _grouped(audit, grain)
        query = query.where(c.id >= first_id, c.id <= last_id).group_by(*keys)
        width = 1 + len(KEYS)
        totals = {tuple(r[:width]): [int(v) for v in r[width:]] for r in conn.execute(query)}
        if totals:
            _apply(conn, grain, totals, sign=-1)
            conn.execute(grain.table.delete().where(grain.table.c.requests <= 0))


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


def rebuild(conn: Connection, audit: sa.Table, grains: Sequence[Grain] = GRAINS) -> None:
    """Recompute rollups from the records (one GROUP BY each)."""
    for grain in grains:
        keys, query = _grouped(audit, grain)
        conn.execute(grain.table.delete())
        conn.execute(
            grain.table.insert().from_select([grain.unit, *KEYS, *SUMS], query.group_by(*keys))
        )


def _apply(
    conn: Connection, grain: Grain, totals: dict[tuple[Any, ...], list[int]], *, sign: int
) -> None:
    r = grain.table.c
    names = (grain.unit, *KEYS)
    units = sorted({k[0] for k in totals})
    existing: set[tuple[Any, ...]] = set()
    for start in range(0, len(units), 500):
        query = sa.select(*(r[n] for n in names)).where(
            r[grain.unit].in_(units[start : start + 500])
        )
        existing.update(tuple(row) for row in conn.execute(query))
    updates, inserts = [], []
    for key, sums in totals.items():
        named = dict(zip(names, key, strict=True))
        if key in existing:
            values = {f"v_{s}": sign * v for s, v in zip(SUMS, sums, strict=True)}
            updates.append({**{f"k_{k}": v for k, v in named.items()}, **values})
        elif sign > 0:
            inserts.append({**named, **dict(zip(SUMS, sums, strict=True))})
    if updates:
        stmt = (
            grain.table.update()
            .where(*(r[n] == sa.bindparam(f"k_{n}") for n in names))
            .values({s: r[s] + sa.bindparam(f"v_{s}") for s in SUMS})
        )
        conn.execute(stmt, updates)
    if inserts:
        conn.execute(grain.table.insert(), inserts)
