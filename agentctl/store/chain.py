"""The audit hash chain and its daily anchors.

`hash = sha256(prev_hash || canonical_json(row without hash))`. Ids are assigned by
the appender under the chain-head lock (ids are contiguous), so a deleted row shows
up as a gap, an edited row as a hash mismatch, and an inserted row as a link that
skips it.

Canonical form: sorted keys, compact separators, and columns whose value is NULL left
out. Leaving NULLs out is what lets the schema grow: a nullable column added later
reads back as NULL on old rows, so their hashes still verify. Rule for new audit
columns: nullable, default NULL. `legacy_hash` is the first format (NULLs included),
accepted by `audit verify` for rows written before the change.

Anchors (`audit_anchors`, one row per chain and UTC day) cut the chain into segments
of contiguous ids: `prev_hash` (the hash before the segment), `head_hash` (its last
row), first/last id, count and the ts range of its rows. The appender extends them
under the chain-head lock, in the same transaction as the rows, so they are exact.
A batch goes to the day of its newest row, never to an earlier day than the last
anchor's, so segments never overlap. With anchors, `audit verify --since` reads only
the segments in range (plus the anchors themselves), `audit export` finds its id
range without a scan, and `audit prune` deletes whole segments and keeps their
anchors (marked pruned) as the proof of what was there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

HASHED_EXCLUDE = frozenset({"hash"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

anchor_metadata = sa.MetaData()
ANCHORS = sa.Table(
    "audit_anchors",
    anchor_metadata,
    sa.Column("chain", sa.String(32), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    sa.Column("first_id", sa.BigInteger, nullable=False),
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("min_ts_us", sa.BigInteger, nullable=False),
    sa.Column("max_ts_us", sa.BigInteger, nullable=False),
    sa.Column("pruned_at_us", sa.BigInteger, nullable=True),
    sa.Index("ix_audit_anchors_first_id", "chain", "first_id"),
)


def canonical(row: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in row.items() if k not in HASHED_EXCLUDE and v is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def record_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(prev_hash.encode())
    digest.update(canonical(row))
    return digest.hexdigest()


def legacy_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    body = {k: v for k, v in row.items() if k not in HASHED_EXCLUDE}
    digest = hashlib.sha256(prev_hash.encode())
    digest.update(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode())
    return digest.hexdigest()


def utc_day(ts_us: int) -> str:
    return (_EPOCH + timedelta(microseconds=ts_us)).date().isoformat()


def day_start_us(day: str) -> int:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return (start - _EPOCH) // timedelta(microseconds=1)


def extend_anchor(conn: Connection, chain: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record `rows` (just appended, contiguous ids, in order) in their day's anchor.

    Call under the chain-head lock, in the appending transaction."""
    if not rows:
        return
    a = ANCHORS.c
    last = conn.execute(
        sa.select(a.day, a.last_id, a.min_ts_us, a.max_ts_us)
        .where(a.chain == chain)
        .order_by(a.first_id.desc())
        .limit(1)
    ).first()
    min_ts = min(int(r["ts_us"]) for r in rows)
    max_ts = max(int(r["ts_us"]) for r in rows)
    day = utc_day(max_ts)
    if last is not None and last.day >= day:
        conn.execute(
            ANCHORS.update()
            .where(a.chain == chain, a.day == last.day)
            .values(
                last_id=rows[-1]["id"],
                count=a.count + len(rows),
                head_hash=rows[-1]["hash"],
                min_ts_us=min(last.min_ts_us, min_ts),
                max_ts_us=max(last.max_ts_us, max_ts),
            )
        )
        return
    conn.execute(
        ANCHORS.insert().values(
            chain=chain,
            day=day,
            first_id=rows[0]["id"],
            last_id=rows[-1]["id"],
            count=len(rows),
            prev_hash=rows[0]["prev_hash"],
            head_hash=rows[-1]["hash"],
            min_ts_us=min_ts,
            max_ts_us=max_ts,
        )
    )


def build_anchors(rows: Sequence[Mapping[str, Any]], chain: str = "main") -> list[dict[str, Any]]:
    """Anchors for existing rows (id, ts_us, prev_hash, hash; in id order), one row at a
    time with the appender's rule. Used by the migration and the synthetic generator."""
    anchors: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for row in rows:
        day = utc_day(int(row["ts_us"]))
        if current is not None and current["day"] >= day:
            current["last_id"] = row["id"]
            current["count"] += 1
            current["head_hash"] = row["hash"]
            current["min_ts_us"] = min(current["min_ts_us"], row["ts_us"])
            current["max_ts_us"] = max(current["max_ts_us"], row["ts_us"])
            continue
        current = {
            "chain": chain,
            "day": day,
            "first_id": row["id"],
            "last_id": row["id"],
            "count": 1,
            "prev_hash": row["prev_hash"],
            "head_hash": row["hash"],
            "min_ts_us": row["ts_us"],
            "max_ts_us": row["ts_us"],
            "pruned_at_us": None,
        }
        anchors.append(current)
    return anchors
