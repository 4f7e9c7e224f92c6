"""`agentctl agents ...`: registration, listing and the kill switch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from agentctl.cli import render
from agentctl.cli.options import Actor, Db, Json, Team, actor_name, open_db, settings_for
from agentctl.errors import CliError
from agentctl.gateway import changes
from agentctl.identity import valid_value
from agentctl.store.models import Agent

app = typer.Typer(
    help="Register agents, list them, and switch them off or on.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="Agent name, as in X-Agent-Identity name=...")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]


def _check(field: str, value: str) -> str:
    if not valid_value(value):
        raise CliError(
            f"invalid {field} {value!r}: use lowercase letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit (at most 64 characters)",
            exit_code=2,
        )
    return value


def _when(us: int | None) -> str:
    if not us:
        return ""
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "owner": agent.owner,
        "purpose": agent.purpose,
        "status": agent.status,
        "registered": agent.registered,
        "status_reason": agent.status_reason,
        "status_actor": agent.status_actor,
        "status_at": _when(agent.status_at_us) or None,
        "created_at": _when(agent.created_at_us),
    }


@app.command("register")
def register(
    name: Name,
    owner: Annotated[str, typer.Option("--owner", help="Owning team.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Purpose, e.g. production.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why.")] = None,
    actor: Actor = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Register an agent and print its token once (only a hash is stored)."""
    for field, value in (("name", name), ("owner", owner), ("purpose", purpose)):
        _check(field, value)
    allowed = settings_for(db, None).identity.purposes
    if purpose not in allowed:
        raise CliError(
            f"purpose {purpose!r} is not allowed; choose one of {', '.join(allowed)} "
            "(or add it to identity.purposes in agentctl.yaml)",
            exit_code=2,
        )
    store = open_db(db)
    token = store.register_agent(name, owner, purpose, actor=actor_name(actor), reason=reason)
    if json_out:
        render.emit_json({"name": name, "owner": owner, "purpose": purpose, "token": token})
        return
    render.out(f"registered [bold]{name}[/] (owner {owner}, purpose {purpose})")
    render.out("agent token (shown once; store it as the agent's API key):")
    render.console.print(token, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_agents(team: Team = None, db: Db = None, json_out: Json = False) -> None:
    """List agents: registered, switched by name, or known from their requests."""
    from agentctl.store.sql import declared_agents

    store = open_db(db, existing=True)
    views = [agent_view(a) for a in store.list_agents(owner=team)]
    listed = {a.name for a in store.list_agents()} if team else {v["name"] for v in views}
    views += [
        {
            "name": a.name,
            "owner": a.owner,
            "purpose": a.purpose,
            "status": "active",
            "registered": False,
            "status_reason": None,
            "status_actor": None,
            "status_at": None,
            "created_at": None,  # never registered: known from its requests
        }
        for a in declared_agents(store)
        if a.name not in listed and (not team or a.owner == team)
    ]
    views.sort(key=lambda v: v["name"])
    if json_out:
        render.emit_json(views)
        return
    rows = [
        (
            v["name"],
            v["owner"],
            v["purpose"],
            v["status"],
            "token" if v["registered"] else "declared",
            v["status_reason"] or "",
        )
        for v in views
    ]
    render.show(render.table(("agent", "owner", "purpose", "status", "identity", "reason"), rows))


@app.command("show")
def show(name: Name, db: Db = None, json_out: Json = False) -> None:
    """Show one agent: registered, switched by name, or known from its requests."""
    store = open_db(db, existing=True)
    agent = store.get_agent(name)
    view = agent_view(agent) if agent is not None else _declared_view(store, name)
    if view is None:
        _refuse_unknown(store, name, hint="(`agentctl agents list` shows registered ones)")
        raise CliError(f"no agent named {name!r}")  # unreachable: it refuses first
    if json_out:
        render.emit_json(view)
        return
    render.show(render.table(("field", "value"), view.items()))


def _declared_view(store: Any, name: str) -> dict[str, Any] | None:
    """An agent that only declared itself (never registered or switched): what its
    requests said, from the audit's daily rollup; None if it never sent one."""
    import sqlalchemy as sa

    from agentctl.store.rollups import DAY_US, ROLLUP_DAILY

    t = ROLLUP_DAILY.c
    with store.engine.connect() as conn:
        first, last, requests = conn.execute(
            sa.select(sa.func.min(t.day), sa.func.max(t.day), sa.func.sum(t.requests)).where(
                t.agent == name
            )
        ).one()
        if not requests:
            return None
        latest = conn.execute(
            sa.select(t.owner, t.purpose).where(t.agent == name, t.day == last).limit(1)
        ).one()

    def day(n: int) -> str:
        return datetime.fromtimestamp(n * DAY_US / 1e6, UTC).date().isoformat()

    return {
        "name": name,
        "owner": latest.owner,
        "purpose": latest.purpose,
        "status": "active",
        "registered": False,
        "identity": "declared in its requests (not registered)",
        "first_seen": day(first),
        "last_seen": day(last),
        "requests": int(requests),
    }


def _known_names(store: Any) -> set[str]:
    """Registered or switched names, plus every name the audit's daily rollup has seen."""
    import sqlalchemy as sa

    from agentctl.store.rollups import ROLLUP_DAILY

    names = set(store.registry().agents)
    with store.engine.connect() as conn:
        names.update(r[0] for r in conn.execute(sa.select(ROLLUP_DAILY.c.agent).distinct()))
    names.discard("")
    return names


def _refuse_unknown(store: Any, name: str, *, hint: str) -> None:
    """A typo in an incident must not leave the real runaway running unnoticed."""
    known = _known_names(store)
    if name in known:
        return
    maybe = render.did_you_mean(name, known)
    raise CliError(f"no agent named {name!r} is registered or has made a request{maybe} {hint}")


def _switch(
    name: str,
    status: str,
    reason: str,
    actor: str | None,
    db: str | None,
    owner: str | None,
    *,
    force: bool = False,
) -> Agent:
    _check("name", name)
    if not reason.strip():
        raise CliError("--reason must not be empty; say why, for the audit trail", exit_code=2)
    store = open_db(db)
    if status == "disabled" and not force:
        _refuse_unknown(store, name, hint="(--force switches the name off before it is seen)")
    elif status == "active":
        _refuse_unknown(store, name, hint="(`agentctl agents list` shows known agents)")
    agent = store.set_status(name, status, actor=actor_name(actor), reason=reason, owner=owner)
    changes.announce("agents")
    return agent


@app.command("disable")
def disable(
    name: Name,
    reason: Reason,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Owner, if the name was never seen.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Disable a name never seen yet (pre-emptively).")
    ] = False,
    actor: Actor = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Kill switch: refuse every request from this agent on every gateway within a second."""
    agent = _switch(name, "disabled", reason, actor, db, owner, force=force)
    if json_out:
        render.emit_json(agent_view(agent))
        return
    render.out(f"[bold red]disabled[/] {agent.name}: {reason}")


@app.command("enable")
def enable(
    name: Name, reason: Reason, actor: Actor = None, db: Db = None, json_out: Json = False
) -> None:
    """Let a disabled agent through again."""
    agent = _switch(name, "active", reason, actor, db, None)
    if json_out:
        render.emit_json(agent_view(agent))
        return
    render.out(f"[bold green]enabled[/] {agent.name}: {reason}")


@app.command("rotate")
def rotate(
    name: Name,
    grace: Annotated[
        str, typer.Option("--grace", help="How long old tokens keep working, e.g. 24h; 0 = now.")
    ] = "24h",
    reason: Annotated[str | None, typer.Option("--reason", help="Why.")] = None,
    actor: Actor = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Issue a new token; the old ones expire after the grace period."""
    from agentctl.cli.trust import parse_duration
    from agentctl.store import credentials

    seconds = 0.0 if grace.strip() == "0" else parse_duration(grace)
    token = credentials.rotate(
        open_db(db), name, grace_s=seconds, actor=actor_name(actor), reason=reason
    )
    changes.announce("agents")
    if json_out:
        render.emit_json({"name": name, "token": token, "grace_s": seconds})
        return
    render.out(f"new token for [bold]{name}[/] (old tokens work for another {grace}):")
    render.console.print(token, markup=False, highlight=False, soft_wrap=True)


@app.command("revoke")
def revoke(
    name: Name, reason: Reason, actor: Actor = None, db: Db = None, json_out: Json = False
) -> None:
    """Revoke every token of this agent now (its requests then fail with 401)."""
    from agentctl.store import credentials

    keys = credentials.revoke(open_db(db), name, actor=actor_name(actor), reason=reason)
    changes.announce("agents")
    if json_out:
        render.emit_json({"name": name, "revoked_key_ids": keys})
        return
    render.out(f"revoked {len(keys)} token(s) of {name}: {', '.join(keys) or 'none active'}")
