"""`agentctl db ...`: schema migrations, explicitly.

SQLite migrates itself whenever it is opened; PostgreSQL is shared by many gateways,
so its schema changes only when an operator runs `agentctl db migrate` (under an
advisory lock, so two migrating processes cannot race) and `serve` refuses to start
on a database with pending migrations.
"""

from __future__ import annotations

from typing import Any

import typer

from agentctl.cli import render
from agentctl.cli.options import ConfigFile, Db, Json, open_db
from agentctl.store.migrations import MIGRATIONS
from agentctl.store.sql import Store

app = typer.Typer(help="Database schema: status and migrations.", no_args_is_help=True)


def _status(store: Store) -> dict[str, Any]:
    pending = store.pending_migrations()
    return {
        "database": store.safe_url,
        "backend": "sqlite" if store.is_sqlite else "postgresql",
        "applied": [m.__name__ for m in MIGRATIONS if m.__name__ not in pending],
        "pending": pending,
        "up_to_date": not pending,
    }


@app.command("status")
def status(db: Db = None, config: ConfigFile = None, json_out: Json = False) -> None:
    """Show applied and pending migrations (exit 0 either way)."""
    store = open_db(db, config, migrate=False, existing=True)  # a read: creates nothing
    try:
        info = _status(store)
    finally:
        store.close()
    if json_out:
        render.emit_json(info)
        return
    render.out(f"{info['backend']} database {info['database']}")
    render.out(f"applied: {len(info['applied'])} migration(s)")
    if info["pending"]:
        render.out(f"pending: {', '.join(info['pending'])}")
        render.out(f"run `agentctl db migrate --db {info['database']}` to apply them")
    else:
        render.out("up to date")


@app.command("migrate")
def migrate(db: Db = None, config: ConfigFile = None, json_out: Json = False) -> None:
    """Apply pending migrations (safe to run from several hosts at once)."""
    store = open_db(db, config, migrate=False)
    try:
        ran = store.migrate()
        info = {**_status(store), "ran": ran}
    finally:
        store.close()
    if json_out:
        render.emit_json(info)
        return
    if ran:
        render.out(f"applied {len(ran)} migration(s) to {info['database']}: {', '.join(ran)}")
    else:
        render.out(f"{info['database']} is up to date; nothing to apply")
