"""`agentctl tail`: which agent is burning money right now."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from agentctl.cli import render
from agentctl.cli.options import Agent, Db, Team, open_db
from agentctl.cli.report import zone
from agentctl.fleet import Fleet, call_line, fleet_totals
from agentctl.fleetinfo import StoreInfo
from agentctl.store.sql import now_us

COLUMNS = (
    "agent",
    "team",
    "purpose",
    "status",
    "tier",
    "req/min",
    "tok/min",
    "$/min",
    "$ today / budget",
    "err/min",
    "last error",
)
NUMERIC = ("req/min", "tok/min", "$/min", "$ today / budget", "err/min")


def register(app: typer.Typer) -> None:
    app.command("tail")(tail)


# Refusals before an identity was read (a malformed X-Agent-Identity, no header at all).
NO_IDENTITY = "(no identity)"


def _usd(value: str | None) -> str:
    """Display rounding only (reports keep every digit)."""
    return "-" if value is None else f"{Decimal(value):.4f}"


def header(totals: dict[str, Any], when: datetime) -> str:
    return (
        f"agentctl tail  {when.strftime('%H:%M:%S %Z')}  {totals['agents']} agents "
        f"({totals['active']} sending in the last minute, {totals['disabled']} disabled)  "
        f"{totals['requests_per_min']:,} req/min  {totals['tokens_per_min']:,} tok/min  "
        f"${_usd(totals['usd_per_min'])}/min  ${_usd(totals['usd_today'])} today  "
        f"{totals['errors_per_min']} err/min"
    )


def view(fleet: Fleet, max_rows: int | None = None) -> Group:
    rows = fleet.snapshot(now_us())
    when = datetime.now(fleet.tz)
    shown = rows if max_rows is None else rows[: max(max_rows, 1)]
    body = [
        (
            r["agent"] or NO_IDENTITY,
            r["owner"] or "-",
            r["purpose"] or "-",
            r["status"],
            r["tier"] or "-",
            r["requests_per_min"],
            r["tokens_per_min"],
            _usd(r["usd_per_min"]),
            f"{_usd(r['usd_today'])} / {_usd(r['budget_today_usd'] if r['agent'] else None)}",
            r["errors_per_min"],
            r["last_error"],
        )
        for r in shown
    ]
    parts: list[Any] = [Text(header(fleet_totals(rows), when), style="bold")]
    parts.append(render.table(COLUMNS, body, right=NUMERIC))
    if len(shown) < len(rows):
        parts.append(Text(f"... {len(rows) - len(shown)} more agents (use --agent or --team)"))
    return Group(*parts)


def tail(
    agent: Agent = None,
    team: Team = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line per call.")] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Print the per-agent view once (with --json: as JSON).")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between polls.")
    ] = 0.5,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Stop after this many seconds.")
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of 'today'.")] = "UTC",
    db: Db = None,
) -> None:
    """Live per-agent rates, today's spend and status (reads the store; works beside a gateway)."""
    store = open_db(db, existing=True)
    fleet = Fleet(store, agent=agent, team=team, tz=zone(tz), info=StoreInfo(store))
    fleet.seed()
    deadline = time.monotonic() + seconds if seconds else None

    def running() -> bool:
        return deadline is None or time.monotonic() < deadline

    def poll() -> list[dict[str, Any]]:
        fleet.roll_day(datetime.now(UTC))
        rows = fleet.poll()
        while len(rows) % 5000 == 0 and rows:  # catching up after a burst
            more = fleet.poll()
            rows += more
            if not more:
                break
        return rows

    if once:
        while deadline is not None and running():
            poll()
            time.sleep(interval)
        poll()
        if json_out:
            rows = fleet.snapshot(now_us())
            render.emit_json({"fleet": fleet_totals(rows), "agents": rows})
        else:
            render.show(view(fleet))
        return
    if json_out:
        while running():
            for row in poll():
                render.emit_line(call_line(row))
            time.sleep(interval)
        return
    if not render.console.is_terminal:
        while running():
            poll()
            time.sleep(interval)
        render.show(view(fleet))
        return
    with Live(view(fleet), console=render.console, refresh_per_second=4) as live:
        while running():
            poll()
            live.update(view(fleet, max_rows=render.console.height - 8))
            time.sleep(min(interval, 1.0))


_table = view  # `agentctl demo` shows the same view
