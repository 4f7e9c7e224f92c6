"""`audit verify`: prove the hash chain, or name the first record that breaks it.

Two levels:
1. Anchors (one per UTC day, all of them, cheap): contiguous ids, each segment's
   `prev_hash` equal to the previous segment's head, the last one equal to the chain
   head, pruned segments only at the start and covered by a `prune` event.
2. Records of the segments in range (`--since/--until` pick the segments whose
   records' timestamps overlap; none picks all): ids contiguous, each `prev_hash` equal
   to the previous record's hash, each hash recomputed from the content, the last hash
   equal to the segment's head. Rows outside every segment are reported as inserted.

What a break means: a gap in ids is a deletion; a record that links past its
predecessor (to the record before it) means the predecessor was inserted; a record
whose content no longer matches its hash was modified; a record that links to
something else means its predecessor was modified and re-hashed.

Limit, as for any chain kept beside the data: someone with write access who rewrites
every hash from the tampered record to the head (and the anchors) is only caught
against a head hash kept elsewhere; `verify --json` prints it for exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentctl.store import tables
from agentctl.store.chain import ANCHORS, legacy_hash, record_hash
from agentctl.store.sql import AUDIT, CHAIN, Store

PAGE = 5000
HEADS = tables.chain_heads


@dataclass
class Break:
    kind: str  # modified | deleted | inserted | anchor
    id: int | None
    request_id: str | None
    message: str


@dataclass
class Verdict:
    ok: bool = True
    records: int = 0
    segments: int = 0
    first_id: int | None = None
    last_id: int | None = None
    head_id: int = 0
    head_hash: str = ""
    pruned_through: int = 0
    problem: Break | None = None
    days: list[str] = field(default_factory=list)

    def fail(self, kind: str, id: int | None, request_id: str | None, message: str) -> Verdict:
        self.ok = False
        self.problem = Break(kind, id, request_id, message)
        return self

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["break"] = data.pop("problem")
        return data


def verify(store: Store, since_us: int | None = None, until_us: int | None = None) -> Verdict:
    with store.engine.connect() as conn:
        anchors, head_id, head_hash = _anchors_and_head(conn)
        verdict = Verdict(head_id=head_id, head_hash=head_hash)
        if not _check_anchors(conn, anchors, verdict):
            return verdict
        live = [a for a in anchors if a["pruned_at_us"] is None]
        chosen = [
            a
            for a in live
            if (since_us is None or a["max_ts_us"] >= since_us)
            and (until_us is None or a["min_ts_us"] < until_us)
        ]
        for anchor in chosen:
            if not _check_segment(conn, anchor, verdict):
                return verdict
            verdict.segments += 1
            verdict.days.append(anchor["day"])
        if chosen:
            verdict.first_id, verdict.last_id = chosen[0]["first_id"], chosen[-1]["last_id"]
        _check_outside(conn, live, head_id, verdict)
    return verdict


def _anchors_and_head(conn: Connection) -> tuple[list[dict[str, Any]], int, str]:
    """Anchors and the chain head from one statement, so they are one snapshot."""
    a = ANCHORS.c
    query = (
        sa.select(
            HEADS.c.last_id.label("chain_head_id"),
            HEADS.c.last_hash.label("chain_head_hash"),
            *a,
        )
        .select_from(HEADS.outerjoin(ANCHORS, a.chain == HEADS.c.chain))
        .where(HEADS.c.chain == CHAIN)
        .order_by(a.first_id)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    if not rows:
        return [], 0, ""
    head_id, head_hash = int(rows[0]["chain_head_id"] or 0), str(rows[0]["chain_head_hash"] or "")
    names = [col.name for col in a]
    anchors = [{n: r[n] for n in names} for r in rows if r["day"] is not None]
    return anchors, head_id, head_hash


def _check_anchors(conn: Connection, anchors: list[dict[str, Any]], v: Verdict) -> bool:
    if not anchors:
        if v.head_id:
            return not v.fail("anchor", None, None, "records exist but no anchor describes them")
        return True
    prev: dict[str, Any] | None = None
    seen_live = False
    for anchor in anchors:
        day = anchor["day"]
        if anchor["count"] != anchor["last_id"] - anchor["first_id"] + 1:
            return not v.fail("anchor", anchor["first_id"], None, f"anchor {day}: bad count")
        if prev is None:
            if anchor["first_id"] != 1 or anchor["prev_hash"] != "":
                return not v.fail("anchor", anchor["first_id"], None, f"anchor {day}: not 1st")
        else:
            if anchor["first_id"] != prev["last_id"] + 1 or day <= prev["day"]:
                msg = f"anchor {day} does not follow anchor {prev['day']}: records were removed"
                return not v.fail("deleted", prev["last_id"] + 1, None, msg)
            if anchor["prev_hash"] != prev["head_hash"]:
                msg = f"anchor {day} does not link to anchor {prev['day']}"
                return not v.fail("anchor", anchor["first_id"], None, msg)
        if anchor["pruned_at_us"] is None:
            seen_live = True
        elif seen_live:
            msg = f"segment {day} is marked pruned but later than live segments"
            return not v.fail("anchor", anchor["first_id"], None, msg)
        else:
            v.pruned_through = anchor["last_id"]
        prev = anchor
    assert prev is not None
    if prev["last_id"] != v.head_id or prev["head_hash"] != v.head_hash:
        msg = f"the chain head (id {v.head_id}) does not match the last anchor ({prev['day']})"
        return not v.fail("anchor", v.head_id, None, msg)
    if v.pruned_through:
        return _check_prune_event(conn, v)
    return True


def _check_prune_event(conn: Connection, v: Verdict) -> bool:
    c = AUDIT.c
    row = conn.execute(
        sa.select(c.id, c.detail).where(c.kind == "prune").order_by(c.id.desc()).limit(1)
    ).first()
    through = json.loads(row.detail or "{}").get("through_id") if row is not None else None
    if row is None or through != v.pruned_through:
        msg = f"records up to id {v.pruned_through} are marked pruned without a prune event"
        return not v.fail("deleted", v.pruned_through, None, msg)
    return True


def _rows(conn: Connection, first: int, last: int) -> Iterator[dict[str, Any]]:
    c = AUDIT.c
    start = first
    while start <= last:
        stop = min(start + PAGE - 1, last)
        query = sa.select(AUDIT).where(c.id >= start, c.id <= stop).order_by(c.id)
        yield from (dict(r._mapping) for r in conn.execute(query))
        start = stop + 1


def _check_segment(conn: Connection, anchor: dict[str, Any], v: Verdict) -> bool:
    expected = anchor["first_id"]
    running = anchor["prev_hash"]
    before: str | None = None  # the hash two records back
    prev_rid: str | None = None
    for row in _rows(conn, anchor["first_id"], anchor["last_id"]):
        rid = row["request_id"]
        if row["id"] != expected:
            msg = f"records {expected}..{row['id'] - 1} are missing (deleted)"
            return not v.fail("deleted", expected, None, msg)
        if row["prev_hash"] != running:
            if before is not None and row["prev_hash"] == before:
                msg = f"record {expected - 1} was inserted: record {expected} links past it"
                return not v.fail("inserted", expected - 1, prev_rid, msg)
            if _content_ok(row):
                msg = (
                    f"record {expected - 1} was modified and re-hashed: record {expected} "
                    "still links to its original hash"
                )
                return not v.fail("modified", expected - 1, prev_rid, msg)
        if not _content_ok(row):
            msg = f"record {expected} was modified: its content does not match its hash"
            return not v.fail("modified", expected, rid, msg)
        before, running, prev_rid = running, row["hash"], rid
        expected += 1
        v.records += 1
    if expected != anchor["last_id"] + 1:
        msg = f"records {expected}..{anchor['last_id']} are missing (deleted)"
        return not v.fail("deleted", expected, None, msg)
    if running != anchor["head_hash"]:
        msg = f"segment {anchor['day']} ends on a different hash than its anchor"
        return not v.fail("modified", anchor["last_id"], prev_rid, msg)
    return True


def _content_ok(row: dict[str, Any]) -> bool:
    stored = row["hash"]
    return stored == record_hash(row["prev_hash"], row) or stored == legacy_hash(
        row["prev_hash"], row
    )


def _check_outside(conn: Connection, live: list[dict[str, Any]], head_id: int, v: Verdict) -> None:
    """Rows outside every segment. A row past the head that verify read may be a later
    append by a live gateway: the head is read again after the row (they commit together)
    and only rows past that are reported."""
    if not v.ok:
        return
    c = AUDIT.c
    low = live[0]["first_id"] if live else head_id + 1
    below = conn.execute(sa.select(c.id, c.request_id).where(c.id < low).limit(1)).first()
    above = conn.execute(
        sa.select(c.id, c.request_id).where(c.id > head_id).order_by(c.id.desc()).limit(1)
    ).first()
    if above is not None:
        now = conn.execute(sa.select(HEADS.c.last_id).where(HEADS.c.chain == CHAIN)).scalar()
        if above.id <= int(now or 0):
            above = None
    stray = below or above
    if stray is not None:
        msg = f"record {stray.id} is outside the chain (inserted, or left behind by a prune)"
        v.fail("inserted", stray.id, stray.request_id, msg)
