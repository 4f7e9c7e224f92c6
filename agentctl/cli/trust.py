"""`agentctl trust ...`: why an agent is in its tier, and operator overrides.

`show` and `explain` read the trust engine's latest snapshot (gateways save it every
15 s) and the trust events in the audit trail, so they work from any machine with
the store. `pin`, `unpin` and `rebaseline` are written to the store, audited, and
applied by every running gateway within a second.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from agentctl.cli import render
from agentctl.cli.options import Actor, Db, Json, actor_name, open_db
from agentctl.errors import CliError
from agentctl.gateway.changes import announce
from agentctl.store import credentials as creds
from agentctl.store.sql import Store
from agentctl.trust import TrustConfig, TrustEngine
from agentctl.trust.signals import measured

app = typer.Typer(help="Trust tiers: explain them, pin them, rebaseline.", no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="Agent name.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]
TIERS = ("quarantined", "probation", "standard", "trusted")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise CliError(f"cannot read duration {text!r}: use e.g. 30m, 24h, 7d", exit_code=2)
    return float(match.group(1)) * _SECONDS[match.group(2)]


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _events(store: Store, name: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = store.records_after(0, limit=100_000, kinds=("trust",), agent=name)
    out = []
    for row in rows[-limit:]:
        detail = json.loads(row["detail"] or "{}")
        out.append({"id": row["id"], "at": row["ts_us"] / 1e6, **detail})
    return out


def _explain(store: Store, name: str) -> dict[str, Any]:
    state = creds.latest_snapshot(store)
    agent = store.get_agent(name)
    if state is None or name not in state.get("agents", {}):
        if agent is None:
            raise CliError(
                f"no trust history for {name!r}: no gateway has seen it yet "
                "(snapshots are saved every 15 s)"
            )
        return {"agent": name, "summary": f"{name} has no trust history yet", "tier": "probation"}
    engine = TrustEngine(TrustConfig())
    engine.restore(state)
    view = engine.explain(name, now=time.time())
    if agent is not None and agent.status == "disabled":
        view["status"] = {
            "disabled": True,
            "by": agent.status_actor,
            "reason": agent.status_reason,
            "at": _when((agent.status_at_us or 0) / 1e6),
        }
    return view


@app.command("show")
def show(name: Name, db: Db = None, json_out: Json = False) -> None:
    """Tier, score and the last trust events of one agent."""
    store = open_db(db, existing=True)
    view = _explain(store, name)
    events = _events(store, name, limit=10)
    if json_out:
        render.emit_json({**view, "audit_events": events})
        return
    render.out(view.get("summary", name))
    score = view.get("score", {})
    render.out(
        f"tier {view.get('tier')} ({view.get('verification', '?')}), "
        f"score E={score.get('mean', '-')} L={score.get('lower', '-')}"
    )
    _event_table(events)


def _event_table(events: list[dict[str, Any]]) -> None:
    """One line per event: the evidence and the command that would undo it."""
    if not events:
        render.out("  no trust events recorded")
        return
    render.out("  events (oldest first):")
    for e in events:
        detector = str(e.get("detector"))
        line = (
            f"  {_when(e.get('at'))}  {e.get('kind')} by {detector}"
            f"{measured(detector, e.get('value'), e.get('threshold'))}: tier "
            f"{e.get('tier_before')} -> {e.get('tier_after')}"
        )
        if e.get("request_id"):
            line += f", request {e['request_id']}"
        render.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if e.get("undo"):
            render.console.print(f"      undo: {e['undo']}", markup=False, soft_wrap=True)


@app.command("explain")
def explain(name: Name, db: Db = None, json_out: Json = False) -> None:
    """Why the agent is in its tier: score, detectors, blockers, evidence, undo commands."""
    store = open_db(db, existing=True)
    view = _explain(store, name)
    events = _events(store, name)
    if json_out:
        render.emit_json({**view, "audit_events": events})
        return
    render.out(f"[bold]{view.get('summary', name)}[/]")
    for key in ("tier", "verification", "ceiling", "learning", "blockers", "pin", "containment"):
        if key in view and view[key] not in (None, [], ""):
            render.out(f"  {key}: {json.dumps(_readable(view[key]), default=str)}")
    if "status" in view:
        s = view["status"]
        render.out(f"  disabled by {s['by']} at {s['at']}: {s['reason']}")
    detectors = view.get("detectors", {})
    if detectors:
        render.out("  detectors:")
        for det, state in detectors.items():
            render.out(f"    {det}: {json.dumps(_readable(state), default=str)}")
    _event_table(events)


def _readable(value: Any) -> Any:
    """Rates and scores to 4 significant digits for a person, times (epoch seconds) to a
    tenth of a second; `--json` keeps full precision."""
    if isinstance(value, float):
        return float(f"{value:.4g}") if abs(value) < 1000 else round(value, 1)
    if isinstance(value, dict):
        return {k: _readable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable(v) for v in value]
    return value


def _override(
    name: str, action: str, *, actor: str | None, reason: str, db: str | None, **kw: Any
) -> None:
    if not reason.strip():
        raise CliError("--reason must not be empty; say why, for the audit trail", exit_code=2)
    store = open_db(db)
    creds.add_override(store, name, action, actor=actor_name(actor), reason=reason, **kw)
    announce("trust")


@app.command("pin")
def pin(
    name: Name,
    tier: Annotated[str, typer.Option("--tier", help="quarantined|probation|standard|trusted")],
    reason: Reason,
    ttl: Annotated[str, typer.Option("--ttl", help="Expiry, e.g. 24h, 7d; 0 for none.")] = "24h",
    actor: Actor = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Freeze an agent's tier (hard caps and disables still apply)."""
    if tier not in TIERS:
        raise CliError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}", exit_code=2)
    seconds = 0.0 if ttl.strip() == "0" else parse_duration(ttl)
    _override(name, "pin", actor=actor, reason=reason, db=db, tier=tier, ttl_s=seconds)
    if json_out:
        render.emit_json({"agent": name, "action": "pin", "tier": tier, "ttl_s": seconds})
        return
    render.out(f"pinned {name} at {tier}" + (f" for {ttl}" if seconds else " (no expiry)"))


@app.command("unpin")
def unpin(
    name: Name, reason: Reason, actor: Actor = None, db: Db = None, json_out: Json = False
) -> None:
    """Let the trust engine move the agent's tier again."""
    _override(name, "unpin", actor=actor, reason=reason, db=db)
    if json_out:
        render.emit_json({"agent": name, "action": "unpin"})
        return
    render.out(f"unpinned {name}")


@app.command("rebaseline")
def rebaseline(
    name: Name, reason: Reason, actor: Actor = None, db: Db = None, json_out: Json = False
) -> None:
    """Accept the agent's current behaviour as its new normal."""
    _override(name, "rebaseline", actor=actor, reason=reason, db=db)
    if json_out:
        render.emit_json({"agent": name, "action": "rebaseline"})
        return
    render.out(f"rebaselined {name}")
