"""`agentctl tail`: which agent is burning money right now."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from agentctl.cli import render
from agentctl.cli.options import Agent, Db, Team, open_db
from agentctl.fleet import Fleet, call_line


def register(app: typer.Typer) -> None:
    app.command("tail")(tail)


def _usd(value: str) -> str:
    """Display rounding only (reports keep every digit)."""
    return f"{Decimal(value):.4f}"


def _table(fleet: Fleet) -> Table:
    now_us = time.time_ns() // 1000
    rows = fleet.snapshot(now_us)
    total_rpm = sum(r["requests_per_min"] for r in rows)
    title = (
        f"agentctl tail  {datetime.now(UTC).strftime('%H:%M:%S')} UTC  "
        f"{len(rows)} agents  {total_rpm} req/min"
    )
    cols = (
        "agent",
        "owner",
        "purpose",
        "req/min",
        "tok/min",
        "$/min",
        "$ today",
        "last",
        "last error",
    )
    body = [
        (
            r["agent"],
            r["owner"],
            r["purpose"],
            r["requests_per_min"],
            r["tokens_per_min"],
            _usd(r["usd_per_min"]),
            _usd(r["usd_today"]),
            r["last_status"],
            r["last_error"],
        )
        for r in rows
    ]
    return render.table(cols, body, title=title, right=("req/min", "tok/min", "$/min", "$ today"))


def tail(
    agent: Agent = None,
    team: Team = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line per call.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls.")] = 0.5,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Stop after this many seconds.")
    ] = None,
    db: Db = None,
) -> None:
    """Live per-agent requests, tokens and cost (reads the store; works beside a gateway)."""
    fleet = Fleet(open_db(db), agent=agent, team=team)
    fleet.seed()
    deadline = time.monotonic() + seconds if seconds else None

    def running() -> bool:
        return deadline is None or time.monotonic() < deadline

    try:
        if json_out:
            while running():
                for row in fleet.poll():
                    render.emit_line(call_line(row))
                time.sleep(interval)
            return
        if not render.console.is_terminal:
            while running():
                fleet.poll()
                time.sleep(interval)
            render.show(_table(fleet))
            return
        with Live(_table(fleet), console=render.console, refresh_per_second=4) as live:
            while running():
                fleet.poll()
                live.update(_table(fleet))
                time.sleep(min(interval, 1.0))
    except KeyboardInterrupt:
        pass
