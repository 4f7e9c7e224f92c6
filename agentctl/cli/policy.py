"""`agentctl policy ...`: validate, apply (as an immutable version), show, schema."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from agentctl.cli import render
from agentctl.cli.options import Actor, Db, Json, actor_name, open_db
from agentctl.errors import CliError
from agentctl.gateway.changes import announce
from agentctl.gateway.governance import load_active
from agentctl.identity import Identity
from agentctl.policy import Change, effective, load_files, policy_changes, policy_json_schema
from agentctl.policy.loader import canonical_json
from agentctl.store.sql import Store, declared_agents, last_declared

app = typer.Typer(
    help="Policy documents: validate, apply as a new version, explain.", no_args_is_help=True
)
Files = Annotated[list[Path], typer.Argument(help="Policy YAML files.")]


def _load(files: list[Path]) -> Any:
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise CliError(f"no such file: {', '.join(missing)}", exit_code=2)
    policy = load_files(files)
    _check_purposes(policy)
    return policy


def _check_purposes(policy: Any) -> None:
    """A `purposes:` scope outside `identity.purposes` can never match: the gateway
    refuses any other purpose in X-Agent-Identity (a typo like 'prodution' would
    silently never apply)."""
    import difflib

    from agentctl.config import load_settings
    from agentctl.errors import ConfigError
    from agentctl.identity import DEFAULT_PURPOSES
    from agentctl.policy.loader import PolicyError, PolicyIssue

    try:
        allowed = set(load_settings().identity.purposes)
    except ConfigError:  # a broken agentctl.yaml is serve's to report
        allowed = set(DEFAULT_PURPOSES)
    issues = []
    for name in policy.document.purposes:
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            reason = (
                f"purpose {name!r} is not in identity.purposes ({', '.join(sorted(allowed))}), "
                f"so no request can declare it{hint}"
            )
            source = policy.scope_sources.get(f"purposes.{name}", "")
            issues.append(PolicyIssue(source, f"purposes.{name}", reason))
    if issues:
        raise PolicyError(issues)


def _identities(store: Store) -> list[Identity]:
    """Every agent a policy reaches: registered or switched ones, and those known only
    from their requests (as they last declared themselves)."""
    known = store.registry().agents  # no ORM rows
    out = [
        Identity(a.name, a.owner, a.purpose, verification="token" if a.registered else "unverified")
        for a in known.values()
    ]
    out += [
        Identity(a.name, a.owner, a.purpose, verification="unverified")
        for a in declared_agents(store)
        if a.name not in known
    ]
    return sorted(out, key=lambda i: i.name)


def _summary(changes: dict[str, list[Change]]) -> dict[str, list[dict[str, Any]]]:
    """Agent -> its changes as JSON-ready dicts, built once per distinct change list
    (`policy_changes` hands agents of one class the same list)."""
    built: dict[int, list[dict[str, Any]]] = {}
    out = {}
    for agent, items in changes.items():
        rows = built.get(id(items))
        if rows is None:
            rows = built[id(items)] = [
                {"path": c.path, "before": c.before, "after": c.after, "scope": c.scope_after}
                for c in items
            ]
        out[agent] = rows
    return out


def _grouped(summary: dict[str, list[dict[str, Any]]]) -> list[tuple[list[str], Any]]:
    """Agents with identical changes share one block: 10,000 agents under a new default
    are one block of changes, not 10,000 copies of it."""
    groups: dict[str, tuple[list[str], Any]] = {}
    keys: dict[int, str] = {}
    for agent, items in summary.items():
        key = keys.get(id(items))
        if key is None:
            key = keys[id(items)] = repr(items)
        groups.setdefault(key, ([], items))[0].append(agent)
    return list(groups.values())


def _names(agents: list[str], shown: int = 5) -> str:
    if len(agents) <= shown:
        return ", ".join(agents)
    return f"{', '.join(agents[:shown])} and {len(agents) - shown:,} more ({len(agents):,} agents)"


@app.command("validate")
def validate(files: Files, json_out: Json = False) -> None:
    """Check each policy file on its own; exit 1 if any is invalid."""
    from agentctl.policy import PolicyError

    results: list[dict[str, Any]] = []
    for f in files:
        try:
            policy = _load([f])
            results.append({"file": str(f), "valid": True, "version": policy.version})
        except PolicyError as exc:
            results.append({"file": str(f), "valid": False, "errors": [str(i) for i in exc.issues]})
    if json_out:
        render.emit_json(results)
    else:
        for r in results:
            if r["valid"]:
                render.out(f"valid: {r['file']} (version {r['version'][:12]})")
            else:
                for line in r["errors"]:
                    render.error(line)
    if not all(r["valid"] for r in results):
        raise typer.Exit(1)


@app.command("apply")
def apply(
    files: Files,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change per agent; apply nothing.")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (audited).")] = None,
    actor: Actor = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Make these files the policy in force on every gateway using this store (within 1 s)."""
    policy = _load(files)
    store = open_db(db)
    current = load_active(store)
    changes = policy_changes(current, policy, _identities(store))
    summary = _summary(changes)
    applied = False
    if not dry_run:
        applied = store.apply_policy(
            policy.version,
            canonical_json(policy.document),
            [str(f) for f in files],
            actor=actor_name(actor),
            reason=reason,
            changes={agent: len(items) for agent, items in changes.items()},
        )
        if applied:
            announce("policy")
    if json_out:
        render.emit_json(
            {
                "version": policy.version,
                "previous": current.version,
                "dry_run": dry_run,
                "applied": applied,
                "changes": summary,
            }
        )
        return
    for agents, items in _grouped(summary):
        render.block(
            _names(agents),
            "\n".join(
                f"  {c['path']}: {c['before']!r} -> {c['after']!r}  ({c['scope']})" for c in items
            ),
        )
    if not summary:
        render.out("no effective change for known agents")
    if dry_run:
        render.out(f"dry run: version {policy.version[:12]} not applied")
    elif applied:
        render.out(f"applied version {policy.version[:12]} (was {current.version[:12]})")
    else:
        render.out(f"version {policy.version[:12]} is already in force")


@app.command("show")
def show(
    effective_for: Annotated[
        str | None,
        typer.Option("--effective", help="Show every effective value for this agent."),
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Owner, for an agent the store doesn't know.")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="Purpose, for an agent the store doesn't know.")
    ] = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """The policy in force, or (--effective AGENT) each value with the scope it came from."""
    store = open_db(db, existing=True)
    policy = load_active(store)
    row = store.active_policy()
    if effective_for is None:
        doc = json.loads(canonical_json(policy.document))
        info = {
            "version": policy.version,
            "applied_at_us": row.applied_at_us if row else None,
            "actor": row.actor if row else None,
            "sources": json.loads(row.sources) if row else [],
            "document": doc,
        }
        if json_out:
            render.emit_json(info)
            return
        if row is None:
            render.out(
                f"version {policy.version[:12]}: the built-in defaults (no policy applied "
                "yet; `agentctl policy apply FILE` applies one)"
            )
        else:
            sources = ", ".join(info["sources"]) or "-"
            render.out(f"version {policy.version[:12]} by {info['actor']} from {sources}")
        render.console.print_json(json.dumps(doc))
        return
    agent: Any = store.get_agent(effective_for)
    if agent is None and not (owner and purpose):
        with store.engine.connect() as conn:  # known from its requests?
            seen = last_declared(conn, effective_for)
        if not seen.owner:
            raise CliError(
                f"agent {effective_for!r} is not registered and has sent no request; pass "
                "--owner and --purpose to see what a declaration with those fields would get",
                exit_code=2,
            )
        agent = SimpleNamespace(owner=seen.owner, purpose=seen.purpose, registered=False)
    identity = Identity(
        effective_for,
        owner or (agent.owner if agent else ""),
        purpose or (agent.purpose if agent else ""),
        verification="token" if agent is not None and agent.registered else "unverified",
    )
    eff = effective(policy, identity)
    rows = eff.explain()
    if json_out:
        render.emit_json(
            {
                "agent": identity.name,
                "owner": identity.owner,
                "purpose": identity.purpose,
                "verification": identity.verification,
                "version": policy.version,
                "values": [{"path": p, "value": v, "scope": s} for p, v, s in rows],
            }
        )
        return
    render.show(
        render.table(
            ("setting", "value", "from scope"),
            [(p, json.dumps(v, default=str), s) for p, v, s in rows],
            title=f"{identity.name} ({identity.verification}) under {policy.version[:12]}",
            keep=("setting",),
        )
    )


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of policy documents (for editors)."""
    render.emit_json(policy_json_schema())
