"""`audit prune --before DATE`: delete whole old segments, leave the rest verifiable.

One transaction under the chain-head lock: take the deleted records out of the
rollup, delete them, mark their anchors pruned (the anchors stay: they are the proof
of what existed and the link the next segment hangs from), and append a `prune`
event with actor, reason, before/after and `through_id`, which `audit verify`
requires for every pruned segment.

Segments are UTC days of appending: a record lands in the day of its batch's newest
timestamp, so a request that started just before midnight, or a journal replayed days
later, is pruned with the day it was written, not the day it started.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from agentctl.errors import CliError
from agentctl.store import rollups
from agentctl.store.chain import ANCHORS
from agentctl.store.sql import AUDIT, CHAIN, Store, now_us


@dataclass
class Pruned:
    days: list[str] = field(default_factory=list)
    records: int = 0
    first_id: int | None = None
    through_id: int | None = None
    event_id: str | None = None


def prune(store: Store, before: date, *, actor: str, reason: str, today: date) -> Pruned:
    """Delete the segments of days before `before` (which may be at most `today`)."""
    if before > today:
        raise CliError(
            f"--before {before} is in the future (today is {today} UTC); only whole past days "
            "can be pruned",
            exit_code=2,
        )
    if not reason.strip():
        raise CliError("--reason must not be empty; say why, for the audit trail", exit_code=2)
    a = ANCHORS.c
    result = Pruned()
    with store.engine.begin() as conn:
        store.lock_chain(conn)
        anchors = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(a.day, a.first_id, a.last_id, a.count, a.head_hash)
                .where(a.chain == CHAIN, a.pruned_at_us.is_(None), a.day < before.isoformat())
                .order_by(a.first_id)
            )
        ]
        if not anchors:
            return result
        first, last = int(anchors[0]["first_id"]), int(anchors[-1]["last_id"])
        rollups.subtract(conn, first, last, AUDIT)
        deleted = conn.execute(AUDIT.delete().where(AUDIT.c.id >= first, AUDIT.c.id <= last))
        days = [str(x["day"]) for x in anchors]
        conn.execute(
            ANCHORS.update().where(a.chain == CHAIN, a.day.in_(days)).values(pruned_at_us=now_us())
        )
        result = Pruned(days, int(deleted.rowcount or 0), first, last)
        detail: dict[str, Any] = {
            "before": {"first_live_id": first, "days": days},
            "after": {"first_live_id": last + 1},
            "pruned": {
                "days": days,
                "first_id": first,
                "last_id": last,
                "records": result.records,
                "head_hash": anchors[-1]["head_hash"],
            },
            "through_id": last,
            "cutoff": before.isoformat(),
        }
        result.event_id = f"evt_{secrets.token_hex(12)}"
        event = {
            "kind": "prune",
            "request_id": result.event_id,
            "ts_us": now_us(),
            "outcome": "event",
            "actor": actor,
            "reason": reason,
            "detail": json.dumps(detail, sort_keys=True),
        }
        store.append_in(conn, [event])
    return result
