"""`audit export`: the raw records, oldest first, for a SIEM.

Streams by id cursor in pages (constant memory at any table size). The id range is
taken from the anchors: a segment whose records' timestamps all fall outside
[since, until) is skipped without being read. Each line is the stored row as is
(hash and prev_hash included), so a receiver can re-verify the chain with
`agentctl.store.chain.record_hash`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from agentctl.store.chain import ANCHORS
from agentctl.store.sql import AUDIT, CHAIN, Store

PAGE = 1000


def id_range(store: Store, since_us: int | None, until_us: int | None) -> tuple[int, int] | None:
    """The smallest id range holding every record with a timestamp in [since, until)."""
    a = ANCHORS.c
    conds: list[Any] = [a.chain == CHAIN, a.pruned_at_us.is_(None)]
    if since_us is not None:
        conds.append(a.max_ts_us >= since_us)
    if until_us is not None:
        conds.append(a.min_ts_us < until_us)
    with store.engine.connect() as conn:
        low, high = conn.execute(
            sa.select(sa.func.min(a.first_id), sa.func.max(a.last_id)).where(*conds)
        ).one()
    if low is None:
        return None
    return int(low), int(high)


def iter_records(
    store: Store,
    since_us: int | None = None,
    until_us: int | None = None,
    *,
    kinds: Sequence[str] | None = None,
    page: int = PAGE,
) -> Iterator[dict[str, Any]]:
    bounds = id_range(store, since_us, until_us)
    if bounds is None:
        return
    c = AUDIT.c
    cursor, high = bounds[0] - 1, bounds[1]
    while cursor < high:
        query = sa.select(AUDIT).where(c.id > cursor, c.id <= high).order_by(c.id).limit(page)
        if since_us is not None:
            query = query.where(c.ts_us >= since_us)
        if until_us is not None:
            query = query.where(c.ts_us < until_us)
        if kinds:
            query = query.where(c.kind.in_(list(kinds)))
        with store.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if not rows:
            return
        yield from rows
        cursor = rows[-1]["id"]
