"""Operator and system events for a report period: who switched what, when and why.

Events are audit records of any kind but `request` (register, disable, enable,
breaker, policy_apply, trust overrides, prune, unpriced_model, ...), with actor,
reason and a JSON `detail` carrying before/after. They are few, and the (kind, ts_us)
index finds them without touching request records.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from agentctl.store.sql import AUDIT, Store

SWITCHES = ("disable", "enable", "breaker")


def events(
    store: Store,
    since_us: int | None,
    until_us: int | None,
    *,
    agent: str | None = None,
    team: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Events in [since, until), oldest first; agent/team filters keep global events
    (policy applies, prunes) since they apply to everyone."""
    c = AUDIT.c
    conds: list[Any] = [sa.or_(c.kind < "request", c.kind > "request")]
    if since_us is not None:
        conds.append(c.ts_us >= since_us)
    if until_us is not None:
        conds.append(c.ts_us < until_us)
    if agent:
        conds.append(sa.or_(c.agent == agent, c.agent == ""))
    if team:
        conds.append(sa.or_(c.owner == team, c.agent == ""))
    query = (
        sa.select(
            c.id,
            c.kind,
            c.request_id,
            c.ts_us,
            c.agent,
            c.owner,
            c.purpose,
            c.actor,
            c.reason,
            c.detail,
            c.model,
        )
        .where(*conds)
        .order_by(c.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        try:
            row["detail"] = json.loads(row["detail"] or "{}")
        except ValueError:
            row["detail"] = {"raw": row["detail"]}
    return rows


def summary(event: dict[str, Any]) -> str:
    """One line saying what changed, from the event's before/after."""
    detail = event.get("detail") or {}
    before, after = detail.get("before"), detail.get("after")
    kind = event["kind"]
    if kind in SWITCHES or kind == "register":
        was = before.get("status") if isinstance(before, dict) else None
        now = after.get("status") if isinstance(after, dict) else None
        if was != now:
            # No row before: an agent known only from its requests, which were served.
            return f"status {was or 'active (declared)'} -> {now}"
        return f"status {now}"
    if kind == "policy_apply":
        return f"policy {str(before or 'none')[:12]} -> {str(after)[:12]}"
    if kind == "prune":
        pruned = detail.get("pruned") or {}
        return (
            f"pruned {pruned.get('records', '?')} records, days {', '.join(pruned.get('days', []))}"
        )
    if kind == "unpriced_model":
        return f"model {event.get('model') or '?'} has no price"
    if before is not None or after is not None:
        return f"{json.dumps(before, default=str)} -> {json.dumps(after, default=str)}"
    return ""
