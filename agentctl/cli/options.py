"""Option definitions shared by every command, so flags mean the same thing everywhere."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from agentctl.config import Settings, load_settings
from agentctl.errors import CliError
from agentctl.store.sql import Store, sqlite_file

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///PATH or postgresql://...).",
        envvar="AGENTCTL_DB",
        show_envvar=True,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (default: agentctl.yaml in the home dir).",
        envvar="AGENTCTL_CONFIG",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Actor = Annotated[
    str | None,
    typer.Option("--actor", help="Who is acting, for the audit trail (default: OS user)."),
]
Agent = Annotated[str | None, typer.Option("--agent", help="Only this agent.")]
Team = Annotated[str | None, typer.Option("--team", help="Only this team (the agents' owner).")]
Purpose = Annotated[str | None, typer.Option("--purpose", help="Only this purpose.")]


def settings_for(db: str | None, config: Path | None = None) -> Settings:
    return load_settings(config=config, overrides={"database": db})


def open_db(
    db: str | None, config: Path | None = None, *, migrate: bool = True, existing: bool = False
) -> Store:
    """The store `--db` (or the config) names. `existing`: a read command given an explicit
    SQLite path that does not exist fails instead of creating an empty database there and
    showing nothing (a mistyped path at 2 a.m. must not look like "no agents")."""
    settings = settings_for(db, config)
    path = sqlite_file(settings.database) if existing and db is not None else None
    if path is not None and not path.exists():
        raise CliError(
            f"no agentctl database at {path}; check --db / AGENTCTL_DB (a read command "
            "creates nothing; `agentctl serve` or `agentctl agents register` does)"
        )
    store = Store(settings.database)
    if migrate:
        store.ensure_ready()
    return store


def actor_name(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"
